"""Bug: next-sample forecaster for noisy 1-D waveforms (a few random sinusoids plus white measurement noise, the
kind of signal used for sensor/audio prediction). A GRU reads the raw samples together with a low-pass copy that a
"denoising front end" computes inside `forward` with `F.avg_pool1d(x, 5, stride=1, padding=2)` - the usual
same-length moving average. That average is centred: the smoothed value at step t contains samples t+1 and t+2,
the very value the model is asked to predict next. Training and validation losses look great because the model
reads the future. Symptom: val MSE 0.043 - below the 0.09 white-noise floor no honest forecaster can beat - vs 0.27 after
the same 10 epochs with the fix (causal moving average, replicate left padding of 4)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout19"
T = 160


def make_waves(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T + 1).float()
    freqs = 0.02 + 0.15 * torch.rand(n, 3, generator=g)
    phases = 2 * math.pi * torch.rand(n, 3, generator=g)
    amps = 0.3 + 0.7 * torch.rand(n, 3, generator=g)
    clean = (amps[:, :, None] * torch.sin(2 * math.pi * freqs[:, :, None] * t + phases[:, :, None])).sum(1)
    clean = clean / clean.std(dim=1, keepdim=True)
    return clean + 0.3 * torch.randn(n, T + 1, generator=g)


class Forecaster(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):  # x: (B, T) past samples -> (B, T) prediction of the next sample at every step
        smooth = F.avg_pool1d(x.unsqueeze(1), 5, stride=1, padding=2, count_include_pad=False).squeeze(1)
        h, _ = self.gru(torch.stack([x, smooth], dim=-1))
        return self.head(h).squeeze(-1)

    def training_step(self, batch, batch_idx):
        (w,) = batch
        loss = F.mse_loss(self(w[:, :-1]), w[:, 1:])
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (w,) = batch
        self.log("val_mse", F.mse_loss(self(w[:, :-1]), w[:, 1:]), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(11)
    train_dl = DataLoader(TensorDataset(make_waves(768, 0)), batch_size=32, shuffle=True)
    val_dl = DataLoader(TensorDataset(make_waves(192, 1)), batch_size=96)
    model = Forecaster()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_mse']):.4f} (white-noise floor 0.09)")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
