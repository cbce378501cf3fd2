"""Bug: fundamental-frequency (pitch) regression from raw 4 kHz waveforms of harmonic tones (random f0 between 100
and 400 Hz, random harmonic weights, noise) with a strided 1-D CNN, target = standardised log2 f0. The head is
`nn.Linear(64, 1)`, so predictions are (B, 1) while the dataset yields targets of shape (B,); `F.mse_loss(pred, y)`
broadcasts them to a (B, B) matrix and the loss is minimised by predicting the batch mean for every clip (PyTorch's
UserWarning scrolls past in the Lightning log). Symptom: val MAE 6.1 semitones (R^2 -0.04) vs 1.0 semitone
(R^2 0.96) with the fix (`pred.squeeze(-1)`)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout19"
SR, N = 4000, 512


def make_tones(n, seed):
    g = torch.Generator().manual_seed(seed)
    f0 = 100 * 2 ** (2 * torch.rand(n, generator=g))  # 100-400 Hz, uniform in log-frequency
    t = torch.arange(N) / SR
    weights = torch.rand(n, 4, generator=g) ** 2
    weights[:, 0] += 0.3
    phase = 2 * math.pi * torch.rand(n, 4, generator=g)
    k = torch.arange(1, 5).float()
    wave = (weights[:, :, None] * torch.sin(2 * math.pi * f0[:, None, None] * k[None, :, None] * t
                                            + phase[:, :, None])).sum(1)
    wave = wave / wave.std(dim=1, keepdim=True) + 0.2 * torch.randn(n, N, generator=g)
    return wave.unsqueeze(1), torch.log2(f0 / 100)


class PitchCNN(L.LightningModule):
    def __init__(self, y_mean, y_std, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv1d(1, 32, 15, stride=2, padding=7), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 64, 9, stride=2, padding=4), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, 64, 9, stride=2, padding=4), nn.BatchNorm1d(64), nn.ReLU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten())
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        return self.head(self.net(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        y = (y - self.hparams.y_mean) / self.hparams.y_std
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x).squeeze(-1) * self.hparams.y_std + self.hparams.y_mean
        semitones = (pred - y).abs().mean() * 12
        r2 = 1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        self.log("val_mae_semitones", semitones, prog_bar=True)
        self.log("val_r2", r2)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5)
    x_tr, y_tr = make_tones(2048, 0)
    x_va, y_va = make_tones(512, 1)
    train_dl = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(x_va, y_va), batch_size=512)
    model = PitchCNN(float(y_tr.mean()), float(y_tr.std()))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mae_semitones={float(m['val_mae_semitones']):.2f} val_r2={float(m['val_r2']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
