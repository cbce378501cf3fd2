"""Bug: a small Transformer encoder classifying synthetic spoken "keywords" (5 classes; each keyword is a sequence of
two or three tone glides at class-specific pitches, with random onset, speed, loudness and background noise, 2 kHz
sample rate, from a seeded torch.Generator). Features are log-power STFT frames standardised per frequency bin with
train statistics; the encoder mean-pools the frames into a linear head.

The learning-rate schedule is the "Noam" schedule copied from the Transformer paper:
`d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)` with warmup = 4000, wrapped in LambdaLR on top of
`Adam(lr=1e-3)`. In the paper that factor *is* the learning rate (base lr 1.0), and 4000 warm-up steps fit 100k
steps; here it is multiplied onto 1e-3 and the run has 282 steps, so the learning rate climbs from 6e-10 to only
1.6e-7 and the warm-up never ends. Nothing crashes and the loss just sits near ln 5, which looks like a slow
start. Symptom: val accuracy 0.21 (chance 0.20), val loss 1.73; the fix (LambdaLR factor with base lr 1.0 and a
warm-up of 10 % of the steps, peak lr ~2.7e-2) reaches val accuracy 1.00."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout23"
SR, N_SAMPLES, N_CLASSES, WARMUP = 2000, 1000, 5, 4000
PITCHES = torch.tensor([[200., 400., 300.], [400., 200., 600.], [600., 600., 200.], [300., 500., 700.],
                        [700., 300., 400.]])


def keywords(n, g):
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    t = torch.arange(N_SAMPLES).float() / SR
    wav = 0.05 * torch.randn(n, N_SAMPLES, generator=g)
    onset = 0.02 + 0.1 * torch.rand(n, generator=g)
    seg = 0.1 + 0.04 * torch.rand(n, generator=g)
    amp = 0.3 + torch.rand(n, generator=g)
    for k in range(3):
        start = onset + k * seg
        f0 = PITCHES[y, k] * (0.95 + 0.1 * torch.rand(n, generator=g))
        on = ((t[None] >= start[:, None]) & (t[None] < (start + seg)[:, None])).float()
        wav += amp[:, None] * on * torch.sin(2 * math.pi * f0[:, None] * t[None])
    return wav, y


def log_spec(wav):
    spec = torch.stft(wav, n_fft=64, hop_length=32, window=torch.hann_window(64), return_complex=True)
    return (spec.abs() ** 2 + 1e-6).log().transpose(1, 2)


class KeywordTransformer(L.LightningModule):
    def __init__(self, n_bins=33, d=48, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.proj = nn.Linear(n_bins, d)
        self.pos = nn.Parameter(0.02 * torch.randn(64, d))
        layer = nn.TransformerEncoderLayer(d, 4, 96, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(d, N_CLASSES)

    def forward(self, x):
        h = self.encoder(self.proj(x) + self.pos[:x.shape[1]])
        return self.head(h.mean(1))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch[0])
        self.log_dict({"val_loss": F.cross_entropy(logits, batch[1]),
                       "val_acc": (logits.argmax(-1) == batch[1]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.98), eps=1e-9)
        d = self.hparams.d

        def noam(step):
            step = step + 1
            return d ** -0.5 * min(step ** -0.5, step * WARMUP ** -1.5)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, noam)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2308)
    g = torch.Generator().manual_seed(236)
    (xtr, ytr), (xva, yva) = keywords(1500, g), keywords(300, g)
    xtr, xva = log_spec(xtr), log_spec(xva)
    mu, sd = xtr.mean((0, 1)), xtr.std((0, 1))
    xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(KeywordTransformer(), DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xva, yva), batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
