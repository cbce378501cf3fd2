"""Bug: next-sample forecaster for ECG-like sensor signals (quasi-periodic P/QRS/T bumps with heart-rate variability,
baseline wander and mains hum, sampled at 250 Hz). The network itself is a proper causal model: dilated 1-D
convolutions that are left-padded, predicting a correction to x[t] that gives x[t+1]. But `forward` first cleans the
input window with a zero-phase FFT band-pass (`rfft`, zero the bins outside 0.7-40 Hz, `irfft`), the textbook ECG
pre-filter. A frequency-domain filter over the whole window is non-causal: the filtered value at t is a weighted sum
of the entire window, including x[t+1] itself, so output t can read the sample it is asked to forecast. The loss
drops fast and validation MSE looks excellent, but the model cannot be run in streaming mode, where the future does
not exist yet. Measured: val MSE 0.0085 with the FFT filter vs 0.0106 when the band-pass is done causally (a
one-pole high-pass and a trailing moving-average low-pass): the "better" number is the peek at the future."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout30"

FS = 250


def synth_ecg(n_windows, length, gen):
    t = torch.arange(length) / FS
    out = []
    for _ in range(n_windows):
        hr = 1.0 + 0.4 * torch.rand(1, generator=gen).item()
        beat_times = torch.cumsum(1 / hr + 0.04 * torch.randn(20, generator=gen), 0) - torch.rand(1, generator=gen)
        sig = torch.zeros(length)
        for bt in beat_times:
            for offset, width, amp in ((-0.2, 0.03, 0.15), (0.0, 0.012, 1.0), (0.25, 0.05, 0.3)):
                sig += amp * torch.exp(-0.5 * ((t - bt - offset) / width) ** 2)
        wander = 0.3 * torch.sin(2 * math.pi * 0.2 * t + 6 * torch.rand(1, generator=gen))
        hum = 0.02 * torch.sin(2 * math.pi * 50 * t)
        out.append(sig + wander + hum + 0.01 * torch.randn(length, generator=gen))
    x = torch.stack(out)
    return (x - x.mean()) / x.std()


class CausalConv(nn.Module):
    def __init__(self, ch_in, ch_out, kernel, dilation):
        super().__init__()
        self.left = (kernel - 1) * dilation
        self.conv = nn.Conv1d(ch_in, ch_out, kernel, dilation=dilation)

    def forward(self, x):
        return self.conv(F.pad(x, (self.left, 0)))


class ECGForecaster(L.LightningModule):
    def __init__(self, channels=32, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.stem = CausalConv(1, channels, 3, 1)
        self.blocks = nn.ModuleList([CausalConv(channels, channels, 3, d) for d in (2, 4, 8, 16)])
        self.out = nn.Conv1d(channels, 1, 1)

    @staticmethod
    def bandpass(x, low=0.7, high=40.0):
        spec = torch.fft.rfft(x, dim=-1)
        freqs = torch.fft.rfftfreq(x.shape[-1], d=1 / FS).to(x.device)
        keep = ((freqs >= low) & (freqs <= high)).to(spec.dtype)
        return torch.fft.irfft(spec * keep, n=x.shape[-1], dim=-1)

    def forward(self, x):
        h = torch.relu(self.stem(self.bandpass(x).unsqueeze(1)))
        for block in self.blocks:
            h = h + torch.relu(block(h))
        return x + self.out(h).squeeze(1)

    def _loss(self, batch):
        (x,) = batch
        return F.mse_loss(self(x[:, :-1]), x[:, 1:])

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(32)
    gen = torch.Generator().manual_seed(32)
    x = synth_ecg(240, 513, gen)
    train = DataLoader(TensorDataset(x[:200]), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(x[200:]), batch_size=40)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ECGForecaster(), train, val)
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
