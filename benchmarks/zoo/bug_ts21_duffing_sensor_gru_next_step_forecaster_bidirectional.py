"""Bug: a sequence-to-sequence next-step forecaster for a vibration sensor. The synthetic data are 300 trajectories of
a forced, damped Duffing oscillator (x'' + d x' + a x + b x^3 = F cos(w t)) integrated with a semi-implicit Euler
scheme from random initial states and forcing, observed with sensor noise (std 0.1). Each training window of 64
samples gives two input channels per step (the reading and a trailing 4-step rolling mean of it) and the target at
every position t is the reading at t + 1. A GRU with a linear head, Adam, StepLR; trajectories 0..239 train,
240..299 validate, so there is no window overlap between the splits.

The encoder was copied from the author's anomaly-detection model and kept `bidirectional=True`. The backward
direction's state at position t has already read x[t+1], x[t+2], ..., so the head can read the next value straight
out of it: the forecaster is not causal. Loss goes down fast and validation looks excellent (the validation windows
leak in the same way), but autoregressive use, where future readings do not exist, is impossible. Symptom: val MSE
0.0195 (bidirectional) vs 0.0341 for the same model with a unidirectional GRU of the same width; the sensor noise
alone (std 0.1, variance 0.01) puts an honest forecaster's floor near 0.01 + model error, and the leaky one keeps
falling toward zero with longer training."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout21"
WINDOW = 64


def duffing_trajectories(n, steps, g, dt=0.05):
    x = torch.randn(n, generator=g)
    v = torch.randn(n, generator=g)
    forcing = 0.3 + 0.5 * torch.rand(n, generator=g)
    omega = 0.8 + 0.6 * torch.rand(n, generator=g)
    out = []
    for k in range(steps):
        acc = -0.3 * v + x - x ** 3 + forcing * torch.cos(omega * k * dt * 4)
        v = v + dt * 4 * acc
        x = x + dt * 4 * v
        out.append(x)
    traj = torch.stack(out, 1)
    return traj + 0.1 * torch.randn(traj.shape, generator=g)


def trailing_mean(series, k=4):
    padded = torch.cat([series[:, :1].expand(-1, k - 1), series], 1)
    return padded.unfold(1, k, 1).mean(-1)


def make_windows(traj, stride=48):
    feats = torch.stack([traj, trailing_mean(traj)], -1)
    xs, ys = [], []
    for start in range(0, traj.shape[1] - WINDOW - 1, stride):
        xs.append(feats[:, start:start + WINDOW])
        ys.append(traj[:, start + 1:start + WINDOW + 1])
    return torch.cat(xs), torch.cat(ys)


class NextStepGRU(L.LightningModule):
    def __init__(self, hidden=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.GRU(2, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x):
        h, _ = self.encoder(x)
        return self.head(h).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)]


def main():
    L.seed_everything(2103)
    g = torch.Generator().manual_seed(11)
    traj = duffing_trajectories(300, 240, g)
    x_tr, y_tr = make_windows(traj[:240])
    x_va, y_va = make_windows(traj[240:])
    model = NextStepGRU()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_loss']):.4f} target_var={float(y_va.var()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
