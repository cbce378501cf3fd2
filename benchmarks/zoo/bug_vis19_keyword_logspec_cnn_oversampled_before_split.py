"""Bug: keyword spotting on synthetic 8 kHz clips (five two-tone "keywords" plus a large "unknown" class of random
tone pairs, additive noise, random onset and gain) with a small log-spectrogram CNN (conv blocks + dense head). The keywords are rare (60 clips
each against 600 unknown), so the user balances the data by repeating every keyword clip ten times and only then
calls `random_split(..., [0.8, 0.2])` on the balanced set. Almost every validation keyword clip has identical copies
in the training set, so validation measures memorisation of the noise, not generalisation. Symptom: val macro
recall 0.98 (val loss 0.05) vs 0.58 (val loss 0.85) with the fix (split the original clips first, oversample the
training part only)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Subset, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout19"
SR, N = 8000, 2400
KEYWORDS = [(440.0, 880.0), (660.0, 330.0), (550.0, 1100.0), (990.0, 495.0), (770.0, 1540.0)]


def tone_pair(f1, f2, g):
    t = torch.arange(N) / SR
    onset = int(torch.randint(0, N // 3, (1,), generator=g))
    seg = N // 4
    wave = torch.zeros(N)
    for k, f in enumerate((f1, f2)):
        f = f * (1 + 0.03 * torch.randn(1, generator=g).item())
        a, b = onset + k * seg, onset + (k + 1) * seg
        env = torch.hann_window(seg)
        wave[a:b] += env * torch.sin(2 * math.pi * f * t[a:b])
    gain = 0.3 + 0.7 * torch.rand(1, generator=g).item()
    return gain * wave + 0.9 * torch.randn(N, generator=g)


def make_clips(seed=3):
    g = torch.Generator().manual_seed(seed)
    waves, labels = [], []
    for c, (f1, f2) in enumerate(KEYWORDS, start=1):
        for _ in range(60):
            waves.append(tone_pair(f1, f2, g))
            labels.append(c)
    for _ in range(600):
        f1, f2 = (300 + 1300 * torch.rand(2, generator=g)).tolist()
        waves.append(tone_pair(f1, f2, g))
        labels.append(0)
    return torch.stack(waves), torch.tensor(labels)


def log_spectrogram(waves):
    spec = torch.stft(waves, n_fft=128, hop_length=96, window=torch.hann_window(128), return_complex=True)
    logspec = torch.log(spec.abs().pow(2) + 1e-6)[:, 4:52]  # ~250-3250 Hz
    logspec = (logspec - logspec.mean()) / logspec.std()
    return logspec.unsqueeze(1)


class KeywordCNN(L.LightningModule):
    def __init__(self, n_classes=6, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 12 * 6, 128), nn.ReLU(), nn.Linear(128, n_classes))
        self.val_pred, self.val_true = [], []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.val_pred.append(logits.argmax(1))
        self.val_true.append(y)

    def on_validation_epoch_end(self):
        pred, true = torch.cat(self.val_pred), torch.cat(self.val_true)
        self.val_pred, self.val_true = [], []
        recalls = [(pred[true == c] == c).float().mean() for c in true.unique()]
        self.log("val_macro_recall", torch.stack(recalls).mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(7)
    waves, labels = make_clips()
    full = TensorDataset(log_spectrogram(waves), labels)
    # balance the classes: repeat each keyword clip 10x so every class has ~600 clips
    keyword_idx = (labels > 0).nonzero().squeeze(1).tolist()
    balanced = ConcatDataset([full] + [Subset(full, keyword_idx)] * 9)
    train_set, val_set = random_split(balanced, [0.8, 0.2], generator=torch.Generator().manual_seed(0))
    train_dl = DataLoader(train_set, batch_size=64, shuffle=True)
    val_dl = DataLoader(val_set, batch_size=256)
    model = KeywordCNN()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_macro_recall={float(m['val_macro_recall']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
