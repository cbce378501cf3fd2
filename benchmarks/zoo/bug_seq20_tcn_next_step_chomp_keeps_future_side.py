"""Bug: next-step forecaster for a machine vibration signal (sum of two drifting sinusoids plus AR(1) noise) with a
small temporal convolutional network (three dilated Conv1d blocks, residual, kernel 3). Each block pads both
sides with `padding=(k-1)*dilation` and then "chomps" the extra steps, as in the TCN paper's Chomp1d. The user
wrote the chomp as `x[:, :, self.chomp:]` (dropping the first steps) instead of `x[:, :, :-self.chomp]`, so every
layer keeps the steps *after* t instead of the ones before: the output at position t, trained to predict x[t+1],
reads x[t+1] itself through the first layer. Training and teacher-forced validation loss look excellent; a real
one-step-ahead forecast (only the past available, output read at the last position) is poor.
Symptom: teacher-forced val MSE 0.0014 (suspiciously good) but honest last-step forecast MSE 0.091; with the
chomp fixed the two agree at 0.079 / 0.079."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout20"

L.seed_everything(2031)


def make_signals(n, length, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    f1 = 0.05 + 0.10 * torch.rand(n, 1, generator=g)
    f2 = 0.15 + 0.20 * torch.rand(n, 1, generator=g)
    ph = 6.28 * torch.rand(n, 2, generator=g)
    x = torch.sin(f1 * t + ph[:, :1]) + 0.5 * torch.sin(f2 * t + ph[:, 1:])
    noise = torch.zeros(n, length)
    eps = 0.25 * torch.randn(n, length, generator=g)
    for i in range(1, length):
        noise[:, i] = 0.7 * noise[:, i - 1] + eps[:, i]
    return (x + noise).unsqueeze(1)          # (N, 1, T)


class Chomp1d(nn.Module):
    def __init__(self, chomp):
        super().__init__()
        self.chomp = chomp

    def forward(self, x):
        return x[:, :, self.chomp:].contiguous()


class TemporalBlock(nn.Module):
    def __init__(self, c_in, c_out, k, dilation):
        super().__init__()
        pad = (k - 1) * dilation
        self.net = nn.Sequential(
            nn.Conv1d(c_in, c_out, k, padding=pad, dilation=dilation), Chomp1d(pad), nn.ReLU(),
            nn.Conv1d(c_out, c_out, k, padding=pad, dilation=dilation), Chomp1d(pad), nn.ReLU(),
        )
        self.down = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return F.relu(self.net(x) + self.down(x))


class TCNForecaster(L.LightningModule):
    def __init__(self, channels=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tcn = nn.Sequential(TemporalBlock(1, channels, 3, 1), TemporalBlock(channels, channels, 3, 2),
                                 TemporalBlock(channels, channels, 3, 4))
        self.head = nn.Conv1d(channels, 1, 1)

    def forward(self, x):
        return self.head(self.tcn(x))

    def _step(self, batch):
        (x,) = batch
        pred = self(x[:, :, :-1])
        return F.mse_loss(pred, x[:, :, 1:])

    def training_step(self, batch, batch_idx):
        loss = self._step(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._step(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@torch.no_grad()
def honest_forecast_mse(model, x, n_points=20):
    """One-step-ahead forecast as deployed: only x[..., :t+1] is known, the prediction is read at position t."""
    model.eval()
    errs = []
    for t in range(x.shape[-1] - n_points - 1, x.shape[-1] - 1):
        pred = model(x[:, :, : t + 1])[:, :, -1]
        errs.append(F.mse_loss(pred, x[:, :, t + 1]))
    return torch.stack(errs).mean().item()


if __name__ == "__main__":
    train_x = make_signals(768, 96, seed=1)
    val_x = make_signals(192, 96, seed=2)
    model = TCNForecaster()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="seq20_tcn_chomp"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train_x), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val_x), batch_size=64))
    print(f"SYMPTOM teacher_forced_val_mse={trainer.callback_metrics['val_loss'].item():.4f}")
    print(f"SYMPTOM honest_last_step_mse={honest_forecast_mse(model, val_x):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")
