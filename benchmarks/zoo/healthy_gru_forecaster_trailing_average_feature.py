"""Healthy: one-step-ahead forecasting of noisy synthetic signals (two sines with random frequencies and phases
per series, plus Gaussian noise of std 0.3) with a causal GRU. Each time step has two input features: the
observed value and a trailing 5-step moving average (x[t-4..t], left-padded with the first value), a common
smoothing feature; the target at step t is x[t+1]. Tuple batches (features (B, T, 2), targets (B, T)). MSE,
Adam, StepLR(step_size=4, gamma=0.5), gradient clipping. Reaches val MSE ~0.175 (noise floor 0.09, predicting the
last value: 0.3)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"
STEPS, WINDOW = 48, 5


def signals(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(STEPS + 1, dtype=torch.float32)
    freq = 0.15 + 0.35 * torch.rand(n, 2, 1, generator=g)
    phase = 6.283 * torch.rand(n, 2, 1, generator=g)
    clean = torch.sin(freq * t + phase).sum(1)
    return clean + 0.3 * torch.randn(n, STEPS + 1, generator=g)


def trailing_average(x, k=WINDOW):
    padded = torch.cat([x[:, :1].expand(-1, k - 1), x], dim=1)
    return padded.unfold(1, k, 1).mean(-1)


def make_dataset(n, seed):
    series = signals(n, seed)
    x = series[:, :-1]
    features = torch.stack([x, trailing_average(x)], dim=-1)
    return TensorDataset(features, series[:, 1:])


class Forecaster(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.rnn = nn.GRU(2, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0]).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_loss", F.mse_loss(pred[:, 8:], y[:, 8:]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)]


def main():
    L.seed_everything(2105)
    train = DataLoader(make_dataset(1024, 0), batch_size=32, shuffle=True)
    val = DataLoader(make_dataset(256, 1), batch_size=256)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Forecaster(), train, val)
    print(f"val_mse={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
