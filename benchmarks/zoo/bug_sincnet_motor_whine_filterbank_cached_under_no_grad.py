"""Bug: raw-waveform classifier for electric-motor whine (four motor types, each with its own whine band, plus a
shared 1.8 kHz hum and broadband noise) built SincNet-style: a learnable band-pass front-end whose 8 filters are
parametrised by their low cut-off and band width in Hz (mel-spaced init), followed by |.|, max-pool, log and a
small 1-D CNN. Building the sinc kernels costs a few tensor ops, so the author rebuilds them once per epoch in
`on_train_epoch_start` under `torch.no_grad()` into a buffer, and `forward` convolves with that cached buffer.
The cut-off parameters are in the optimizer (with their own larger lr, as in SincNet) but never receive a
gradient: the front-end stays at its mel initialisation, where motor types 0/1 share one filter and 2/3 another.
Symptom: val acc 0.59 (cut-offs still exactly at their init 80, 269, ..., 3005 Hz) vs 0.99 when `forward` builds
the kernels from the parameters (the 1182 Hz filter then moves to 996 Hz, between the two whine bands)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout14"
FS = 8000
N_SAMPLES = 2048
WHINE_HZ = [900.0, 1100.0, 2500.0, 2800.0]


def record_motors(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    t = torch.arange(N_SAMPLES) / FS
    f = torch.tensor(WHINE_HZ)[labels] + (torch.rand(n, generator=g) - 0.5) * 120
    whine = (0.3 + 0.7 * torch.rand(n, 1, generator=g)) * torch.sin(
        2 * math.pi * f[:, None] * t + 2 * math.pi * torch.rand(n, 1, generator=g))
    f_hum = 1800 + (torch.rand(n, generator=g) - 0.5) * 400
    hum = (0.3 + 0.7 * torch.rand(n, 1, generator=g)) * torch.sin(2 * math.pi * f_hum[:, None] * t)
    noise = 0.5 * torch.randn(n, N_SAMPLES, generator=g)
    return (whine + hum + noise)[:, None], labels


def hz_to_mel(hz):
    return 2595 * math.log10(1 + hz / 700)


def mel_to_hz(mel):
    return 700 * (10 ** (mel / 2595) - 1)


class SincConv(nn.Module):
    """Band-pass filters h = lowpass(f_high) - lowpass(f_low), windowed (Ravanelli & Bengio, 2018)."""

    def __init__(self, out_channels=8, kernel_size=129, sample_rate=FS, min_low_hz=50, min_band_hz=20):
        super().__init__()
        self.kernel_size, self.sample_rate = kernel_size, sample_rate
        self.min_low_hz, self.min_band_hz = min_low_hz, min_band_hz
        mel = torch.linspace(hz_to_mel(30), hz_to_mel(sample_rate / 2 - 100), out_channels + 1)
        hz = torch.tensor([mel_to_hz(float(m)) for m in mel])
        self.low_hz_ = nn.Parameter(hz[:-1].clone().unsqueeze(1))
        self.band_hz_ = nn.Parameter(torch.diff(hz).unsqueeze(1))
        n = torch.arange(-(kernel_size // 2), kernel_size // 2 + 1).float()
        self.register_buffer("n_", 2 * math.pi * n / sample_rate)
        self.register_buffer("window_", torch.hamming_window(kernel_size, periodic=False))
        self.register_buffer("kernels", torch.zeros(out_channels, 1, kernel_size))

    def _lowpass(self, fc):
        safe_n = torch.where(self.n_ == 0, torch.ones_like(self.n_), self.n_)
        return torch.where(self.n_ == 0, 2 * fc / self.sample_rate, torch.sin(fc * self.n_) / (safe_n * self.sample_rate / 2))

    def build_kernels(self):
        low = self.min_low_hz + self.low_hz_.abs()
        high = (low + self.min_band_hz + self.band_hz_.abs()).clamp(max=self.sample_rate / 2)
        band = (self._lowpass(high) - self._lowpass(low)) * self.window_
        band = band / band.abs().amax(dim=1, keepdim=True)
        return band.unsqueeze(1)

    def forward(self, x):
        return F.conv1d(x, self.kernels, padding=self.kernel_size // 2)


class MotorSincNet(L.LightningModule):
    def __init__(self, lr=2e-3, sinc_lr=5.0):
        super().__init__()
        self.save_hyperparameters()
        self.sinc = SincConv()
        self.cnn = nn.Sequential(
            nn.Conv1d(8, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(inplace=True), nn.MaxPool1d(4),
            nn.Conv1d(32, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 4),
        )

    def setup(self, stage):
        self._refresh_filters()

    def on_train_epoch_start(self):
        # sinc kernels only change through 16 scalars: rebuild once per epoch instead of every step
        self._refresh_filters()

    @torch.no_grad()
    def _refresh_filters(self):
        self.sinc.kernels.copy_(self.sinc.build_kernels())

    def forward(self, wav):
        h = F.max_pool1d(self.sinc(wav).abs(), 16)
        return self.cnn(torch.log1p(h))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam([
            {"params": self.sinc.parameters(), "lr": self.hparams.sinc_lr},  # cut-offs live in Hz
            {"params": self.cnn.parameters(), "lr": self.hparams.lr},
        ])


def main():
    L.seed_everything(0)
    train_x, train_y = record_motors(1200, seed=1)
    val_x, val_y = record_motors(400, seed=2)
    model = MotorSincNet()
    trainer = L.Trainer(
        max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="motor_sincnet"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val_x, val_y), batch_size=200))
    low = (model.sinc.min_low_hz + model.sinc.low_hz_.abs()).flatten()
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f} low cut-offs Hz={[round(v) for v in low.tolist()]}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
