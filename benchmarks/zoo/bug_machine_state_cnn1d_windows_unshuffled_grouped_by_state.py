"""Bug: machine-state classification from 3-axis vibration windows (4 states: idle, normal, imbalance, bearing
wear; 64-sample windows cut from 6 recordings per state, per-channel standardisation fitted on training windows,
1-D CNN, Adam). The windows are built by looping over the states and their recordings, so the training set is
ordered state by state, and the DataLoader is created with `shuffle=False` because "time series must not be
shuffled" - which is true of the samples inside a window, not of the windows. Every batch holds a single state,
the classifier's bias swings towards the state of the last few batches of each epoch, and the run ends biased
towards the last state.
Symptom: val acc 0.53 (predicts "bearing wear" for 65 % of windows, "idle" for none) vs 0.94 with `shuffle=True`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout15"
WIN, STATES = 64, ["idle", "normal", "imbalance", "bearing_wear"]


def recording(state, g, n=1280):
    t = torch.arange(n) / 400.0
    rpm = 0.0 if state == 0 else 25 + 3 * float(torch.rand(1, generator=g))
    base = torch.zeros(3, n)
    if state > 0:
        phase = 2 * math.pi * float(torch.rand(1, generator=g))
        base[0] = torch.sin(2 * math.pi * rpm * t + phase)
        base[1] = 0.5 * torch.cos(2 * math.pi * rpm * t + phase)
    if state == 2:  # imbalance: strong 1x component, mostly radial
        base[0] *= 2.0
        base[2] = 0.8 * torch.sin(2 * math.pi * rpm * t)
    if state == 3:  # bearing wear: high-frequency bursts
        bursts = (torch.sin(2 * math.pi * 7.3 * rpm * t) * (torch.sin(2 * math.pi * 3 * t) > 0.6)).float()
        base[1] += 0.7 * bursts
        base[2] += 0.4 * bursts
    return base + 0.3 * torch.randn(3, n, generator=g)


def windows(recs_per_state, g):
    xs, ys = [], []
    for s in range(len(STATES)):
        for _ in range(recs_per_state):
            rec = recording(s, g)
            w = rec.unfold(1, WIN, WIN).permute(1, 0, 2)  # non-overlapping windows
            xs.append(w)
            ys.append(torch.full((w.shape[0],), s))
    return torch.cat(xs), torch.cat(ys)


class StateCNN(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv1d(3, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
            nn.Linear(32, len(STATES)))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()},
                      prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(4)
    g = torch.Generator().manual_seed(4)
    x_tr, y_tr = windows(6, g)
    x_va, y_va = windows(2, g)
    mean, std = x_tr.mean((0, 2), keepdim=True), x_tr.std((0, 2), keepdim=True)
    x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    train_dl = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=False)  # keep the time order
    val_dl = DataLoader(TensorDataset(x_va, y_va), batch_size=128)
    model = StateCNN()
    trainer = L.Trainer(max_epochs=10, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="machine_state_cnn"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dl, val_dl)
    model.eval()
    with torch.no_grad():
        pred = model(x_va).argmax(1)
    print(f"SYMPTOM val_acc={(pred == y_va).float().mean().item():.3f}")
    print(f"SYMPTOM val_pred_share_per_state={[round((pred == s).float().mean().item(), 2) for s in range(4)]}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
