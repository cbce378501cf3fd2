"""Bug: keyword-spotting GRU on synthetic log-mel frames (40 frames x 20 bins, 4 keywords; each keyword is a
formant track sweeping through the bins, on top of a recording gain that shifts every bin by a per-clip offset
around 8 log units). The model's `forward` applies SpecAugment (time and frequency masking) and per-utterance
cepstral mean/variance normalisation, but the CMVN lines were written inside the `if self.training:` block that
guards the augmentation. Training sees normalised features and its loss falls to near zero; validation feeds the
raw log-mel frames, with a mean around 8 and clip-dependent offsets, to a network that never saw such inputs.
Measured: val loss 3.08 and accuracy 0.30 (chance 0.25; ln 4 = 1.39 is the uninformed loss) while train loss
falls to 0.04; with CMVN outside the training branch val loss is 0.001 and accuracy 1.00."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence", "input-scale"}
SPLIT = "heldout34"
FRAMES, BINS, N_WORDS = 40, 20, 4


def log_mel_clips(n, g):
    labels = torch.randint(0, N_WORDS, (n,), generator=g)
    t = torch.linspace(0, 1, FRAMES)
    start = torch.tensor([3.0, 16.0, 6.0, 13.0])[labels]
    slope = torch.tensor([12.0, -12.0, 4.0, -4.0])[labels]
    onset = torch.rand(n, 1, generator=g) * 0.3
    centre = start[:, None] + slope[:, None] * (t[None] - onset).clamp(min=0)
    bins = torch.arange(BINS).float()
    track = 3.0 * torch.exp(-0.5 * (bins[None, None] - centre[..., None]) ** 2)
    gain = 8.0 + 2.0 * torch.randn(n, 1, 1, generator=g)
    return gain + track + 0.5 * torch.randn(n, FRAMES, BINS, generator=g), labels


class KeywordSpotter(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(BINS, hidden, batch_first=True)
        self.head = nn.Linear(hidden, N_WORDS)

    def spec_augment(self, x):
        x = x.clone()
        t0 = torch.randint(0, FRAMES - 6, (1,)).item()
        f0 = torch.randint(0, BINS - 3, (1,)).item()
        x[:, t0:t0 + 6] = 0.0
        x[:, :, f0:f0 + 3] = 0.0
        return x

    def forward(self, feats):
        if self.training:
            feats = (feats - feats.mean(1, keepdim=True)) / (feats.std(1, keepdim=True) + 1e-5)
            feats = self.spec_augment(feats)
        _, h = self.gru(feats)
        return self.head(h[-1])

    def training_step(self, batch, batch_idx):
        feats, labels = batch
        loss = F.cross_entropy(self(feats), labels)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        feats, labels = batch
        logits = self(feats)
        self.log("val_loss", F.cross_entropy(logits, labels))
        self.log("val_acc", (logits.argmax(1) == labels).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3404)
    feats, labels = log_mel_clips(1200, torch.Generator().manual_seed(3404))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(KeywordSpotter(), DataLoader(TensorDataset(feats[:1000], labels[:1000]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(feats[1000:], labels[1000:]), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_loss={m['val_loss'].item():.3f} "
          f"val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
