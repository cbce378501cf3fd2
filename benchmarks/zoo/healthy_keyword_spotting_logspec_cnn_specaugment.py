"""Healthy: keyword spotting on log-spectrograms with a 1-D CNN over time (frequency bins as input channels, four
Conv1d + BatchNorm1d + ReLU blocks, the last two dilated, global average pooling, dropout, linear head;
torchvision-style init: `kaiming_normal_(mode="fan_out")` convs, BN weight 1 / bias 0, head N(0, 0.01)) and
SpecAugment inside the model (two frequency masks of up to 12 bins and two time masks of up to 5 frames, applied
only when `self.training`). Synthetic 0.5 s clips at 8 kHz: 8 "keywords", each a sequence of three tones with a
glide, spoken at a random pitch (+-6 %), tempo offset and loudness, over background noise. Features: log power STFT
(n_fft 256, hop 128 -> 129 bins x 32 frames) standardised per bin with training statistics. AdamW, CosineAnnealingLR
per epoch, label smoothing 0.05. Reaches val acc 0.92, val loss 0.56 (chance 0.125)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout6"
SR, CLIP, WORDS = 8000, 4000, 8


def keyword_clips(n, seed):
    g = torch.Generator().manual_seed(seed)
    tones = torch.randint(300, 3200, (WORDS, 3), generator=torch.Generator().manual_seed(0)).float()
    t = torch.arange(CLIP) / SR
    labels = torch.randint(0, WORDS, (n,), generator=g)
    clips = torch.empty(n, CLIP)
    for i, w in enumerate(labels.tolist()):
        pitch = 1 + 0.06 * (2 * torch.rand(1, generator=g) - 1)
        start = torch.rand(1, generator=g) * 0.12
        seg = ((t - start) / 0.11).floor().clamp(0, 2).long()
        freq = tones[w][seg] * pitch * (1 + 0.15 * ((t - start) / 0.11).frac())
        phase = 2 * math.pi * torch.cumsum(freq, 0) / SR
        voiced = ((t >= start) & (t < start + 0.33)).float()
        loud = 0.2 + 0.4 * torch.rand(1, generator=g)
        clips[i] = loud * voiced * torch.sin(phase) + 0.6 * torch.randn(CLIP, generator=g)
    return clips, labels


def log_spectrogram(clips):
    spec = torch.stft(clips, n_fft=256, hop_length=128, window=torch.hann_window(256), return_complex=True)
    return torch.log(spec.abs() ** 2 + 1e-6)[..., :32]


def spec_augment(x, freq_masks=2, max_f=12, time_masks=2, max_t=5):
    x = x.clone()
    b, n_f, n_t = x.shape
    for _ in range(freq_masks):
        w = torch.randint(0, max_f + 1, (b, 1, 1), device=x.device)
        f0 = torch.randint(0, n_f - max_f, (b, 1, 1), device=x.device)
        idx = torch.arange(n_f, device=x.device)[None, :, None]
        x = x.masked_fill((idx >= f0) & (idx < f0 + w), 0.0)
    for _ in range(time_masks):
        w = torch.randint(0, max_t + 1, (b, 1, 1), device=x.device)
        t0 = torch.randint(0, n_t - max_t, (b, 1, 1), device=x.device)
        idx = torch.arange(n_t, device=x.device)[None, None, :]
        x = x.masked_fill((idx >= t0) & (idx < t0 + w), 0.0)
    return x


class KeywordSpotter(L.LightningModule):
    def __init__(self, bins=129, lr=2e-3, epochs=10):
        super().__init__()
        self.save_hyperparameters()

        def block(i, o, d=1):
            return nn.Sequential(nn.Conv1d(i, o, 3, padding=d, dilation=d, bias=False), nn.BatchNorm1d(o), nn.ReLU())

        self.net = nn.Sequential(block(bins, 64), block(64, 64), block(64, 64, 2), block(64, 64, 4),
                                 nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, WORDS))
        for m in self.modules():  # torchvision's ResNet init
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, spec):
        if self.training:
            spec = spec_augment(spec)
        return self.net(spec)

    def _step(self, batch, stage):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.05)
        self.log(f"{stage}_loss", loss, prog_bar=stage == "val")
        self.log(f"{stage}_acc", (logits.argmax(-1) == y).float().mean())
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(612)
    xtr, ytr = keyword_clips(1600, seed=1)
    xva, yva = keyword_clips(400, seed=2)
    str_, sva = log_spectrogram(xtr), log_spectrogram(xva)
    mean, std = str_.mean((0, 2), keepdim=True), str_.std((0, 2), keepdim=True)
    train = DataLoader(TensorDataset((str_ - mean) / std, ytr), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset((sva - mean) / std, yva), batch_size=200)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    model = KeywordSpotter(epochs=10)
    trainer.fit(model, train, val)
    model.eval()
    with torch.no_grad():
        v = (sva - mean) / std
        a1, a2 = model(v).argmax(-1), model(v).argmax(-1)
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss']:.3f} val_acc={m['val_acc']:.3f} "
          f"predictions that change between two evals: {(a1 != a2).float().mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
