"""Bug: fault detection on 3-channel pump sensor windows (pressure, flow, vibration; 64 samples each) with a 1-D CNN
+ global max pool. Faults are rare (~8 %) and show as a short damped burst on the vibration channel, sometimes
weak enough to be buried in the noise, and 15 % of the maintenance labels are wrong. To fight the imbalance the
user oversamples the fault windows 6x (`np.concatenate` of repeated rows) on the whole table and then calls
`train_test_split(..., stratify=y)`: most validation faults are exact copies of training faults, which a CNN that
memorises its training set recognises without having learned the signature. Validation fault recall and F1 look far
better than the model really is.
Symptom: val fault F1 0.98 (recall 1.00) vs F1 0.58 on fresh windows; with the split done first and only the
training part oversampled, val F1 0.50 / fresh F1 0.60 (validation now tells the truth)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.metrics import f1_score, recall_score
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout20"

L.seed_everything(4242)


def pump_windows(n, seed, fault_rate=0.08, label_noise=0.15):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(64, dtype=torch.float32)
    x = torch.randn(n, 3, 64, generator=g) * 0.5
    x[:, 0] += torch.sin(0.2 * t + 6.28 * torch.rand(n, 1, generator=g))
    x[:, 1] += 0.5 * torch.cos(0.1 * t + 6.28 * torch.rand(n, 1, generator=g))
    fault = torch.rand(n, generator=g) < fault_rate
    onset = torch.randint(5, 50, (n, 1), generator=g).float()
    amp = 1.2 + 2.0 * torch.rand(n, 1, generator=g)
    dt = (t - onset).clamp(min=0)
    burst = amp * torch.exp(-dt / 4) * torch.sin(1.8 * dt) * (t >= onset)
    x[:, 2] += burst * fault.unsqueeze(1)
    y = fault.long()
    flip = (torch.rand(n, generator=g) < label_noise) & fault
    flip |= (torch.rand(n, generator=g) < label_noise * 0.08)
    y = torch.where(flip, 1 - y, y)
    return x.numpy(), y.numpy()


class FaultCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv1d(3, 32, 5, padding=2), nn.ReLU(), nn.Conv1d(32, 64, 5, padding=2), nn.ReLU(),
            nn.Conv1d(64, 64, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x):
        return self.head(self.features(x).amax(dim=2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def oversample(x, y, factor=6):
    idx = np.concatenate([np.arange(len(y))] + [np.nonzero(y == 1)[0]] * (factor - 1))
    return x[idx], y[idx]


@torch.no_grad()
def fault_scores(model, x, y):
    model.eval()
    pred = model(torch.tensor(x)).argmax(1).numpy()
    return f1_score(y, pred), recall_score(y, pred)


if __name__ == "__main__":
    x, y = pump_windows(2400, seed=5)
    x, y = oversample(x, y)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    tensors = lambda a, b: TensorDataset(torch.tensor(a), torch.tensor(b))
    model = FaultCNN()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="seq20_pump_fault"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(tensors(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(tensors(x_va, y_va), batch_size=256))
    f1, rec = fault_scores(model, x_va, y_va)
    print(f"SYMPTOM val_fault_f1={f1:.3f} val_fault_recall={rec:.3f}")
    x_new, y_new = pump_windows(2000, seed=6)
    f1, rec = fault_scores(model, x_new, y_new)
    print(f"SYMPTOM fresh_fault_f1={f1:.3f} fresh_fault_recall={rec:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
