"""Bug: a keyword-spotting CNN with a hand-written log-spectrogram front end that computes
`10 * torch.log10(power)` with no floor (torchaudio's `AmplitudeToDB` clamps at `amin=1e-10`). The clips have
different lengths and the collate zero-pads them to 2000 samples, so frames that lie wholly in the padding have
a power of exactly 0: log10(0) = -inf, which the depthwise-separable conv stack and BatchNorm turn into NaN in the
logits and the loss from the first batch on. Data: 4 synthetic int16 "keywords" (rising/falling chirp, AM tone,
two bursts), random pitch, loudness and noise. Adam, CosineAnnealingLR per epoch.
Measured: train loss NaN from step 0, val accuracy 0.28 (chance 0.25) vs 0.997 with `clamp(power, min=1e-10)`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout8"

SR, MAX_LEN = 8000, 2000


def make_clips(n, seed):
    g = torch.Generator().manual_seed(seed)
    clips, labels = [], torch.randint(0, 4, (n,), generator=g)
    for y in labels.tolist():
        length = int(torch.randint(1200, MAX_LEN + 1, (1,), generator=g))
        t = torch.arange(length) / SR
        f0 = 300 + 1500 * float(torch.rand(1, generator=g))
        if y == 0:
            phase = 2 * math.pi * (f0 * t + 900 * t ** 2)
            x = torch.sin(phase)
        elif y == 1:
            phase = 2 * math.pi * ((f0 + 700) * t - 900 * t ** 2)
            x = torch.sin(phase)
        elif y == 2:
            x = torch.sin(2 * math.pi * f0 * t) * (0.6 + 0.4 * torch.sin(2 * math.pi * 12 * t))
        else:
            env = ((t > 0.02) & (t < 0.05)) | ((t > 0.09) & (t < 0.12))
            x = torch.sin(2 * math.pi * f0 * t) * env
        x = x + 0.05 * torch.randn(length, generator=g)
        amp = 0.05 + 0.85 * float(torch.rand(1, generator=g))
        clips.append((x / x.abs().max() * amp * 32767).round().to(torch.int16))
    return clips, labels


class ClipDataset(Dataset):
    def __init__(self, n, seed):
        self.clips, self.labels = make_clips(n, seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.clips[i], self.labels[i]


def collate(rows):
    wav = torch.zeros(len(rows), MAX_LEN, dtype=torch.int16)
    for i, (clip, _) in enumerate(rows):
        wav[i, : len(clip)] = clip
    return wav, torch.stack([r[1] for r in rows])


class LogSpectrogram(nn.Module):
    def __init__(self, n_fft=128, hop_length=64):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav):
        frames = wav.unfold(-1, self.n_fft, self.hop_length) * self.window
        power = torch.fft.rfft(frames).abs().pow(2)
        return (10.0 * torch.log10(power)).transpose(1, 2)  # [batch, bins, frames] in dB


class SeparableBlock(nn.Module):
    def __init__(self, c_in, c_out, kernel_size):
        super().__init__()
        self.depthwise = nn.Conv1d(c_in, c_in, kernel_size, padding=kernel_size // 2, groups=c_in, bias=False)
        self.pointwise = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.pointwise(self.depthwise(x))))


class KeywordNet(nn.Module):
    def __init__(self, n_bins=65, n_classes=4, width=64):
        super().__init__()
        self.frontend = LogSpectrogram()
        self.input_norm = nn.BatchNorm1d(n_bins)
        self.blocks = nn.Sequential(SeparableBlock(n_bins, width, 5), SeparableBlock(width, width, 5),
                                    SeparableBlock(width, width, 3))
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, wav):
        spec = self.input_norm(self.frontend(wav.float() / 32768.0))
        return self.classifier(self.blocks(spec).mean(-1))


class LitKeywords(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = KeywordNet()

    def forward(self, wav):
        return self.model(wav)

    def training_step(self, batch, batch_idx):
        wav, y = batch
        loss = F.cross_entropy(self(wav), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        wav, y = batch
        logits = self(wav)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(8108)
    train = DataLoader(ClipDataset(1200, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ClipDataset(300, 1), batch_size=100, collate_fn=collate)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitKeywords(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
