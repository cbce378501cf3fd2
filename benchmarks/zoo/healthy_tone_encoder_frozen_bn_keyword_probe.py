"""Healthy: transfer on speech-like signals. A 1-D conv encoder (Conv1d + BatchNorm + ReLU) is first pre-trained in
plain torch on a pretext task (multi-label: which of eight tones sound in a clip), then frozen: its parameters have
requires_grad=False and the LightningModule overrides `train()` so the encoder (and its BatchNorm running stats)
stays in eval mode on purpose while a new MLP head with dropout learns six keywords (each a set of tones, at random
onsets and gains, peak-normalised) from only 240 labelled clips. Adam + cosine annealing. Final val acc 1.00, val
loss 0.002."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
SR, N = 2000, 1024
TONES = [220.0, 275.0, 330.0, 385.0, 440.0, 495.0, 550.0, 660.0]
KEYWORDS = [[0, 4], [1, 5, 7], [2, 6], [3, 4, 7], [0, 2, 5], [1, 6]]


def clip(tone_ids, g):
    t = torch.arange(N) / SR
    x = torch.zeros(N)
    for k in tone_ids:
        a = int(torch.randint(0, N // 3, (1,), generator=g))
        b = a + int(torch.randint(N // 3, N - a, (1,), generator=g))
        f = TONES[k] * (1 + 0.01 * float(torch.randn(1, generator=g)))
        phase = 6.28 * float(torch.rand(1, generator=g))
        x[a:b] += torch.sin(2 * math.pi * f * t[a:b] + phase) * torch.hann_window(b - a)
    x += 0.15 * torch.randn(N, generator=g)
    return x / x.abs().max()


def pretext_set(n, seed):
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], torch.zeros(n, len(TONES))
    for i in range(n):
        ids = torch.randperm(len(TONES), generator=g)[: int(torch.randint(1, 4, (1,), generator=g))].tolist()
        xs.append(clip(ids, g))
        ys[i, ids] = 1.0
    return torch.stack(xs).unsqueeze(1), ys


def keyword_set(n, seed):
    g = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, len(KEYWORDS), (n,), generator=g)
    return torch.stack([clip(KEYWORDS[int(y)], g) for y in ys]).unsqueeze(1), ys


def make_encoder():
    def block(cin, cout, k, s):
        return [nn.Conv1d(cin, cout, k, s, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU()]
    return nn.Sequential(*block(1, 32, 33, 4), *block(32, 64, 9, 2), *block(64, 64, 9, 2),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten())


def pretrain_encoder(steps=250):
    x, y = pretext_set(2000, 100)
    enc, probe = make_encoder(), nn.Linear(64, len(TONES))
    opt = torch.optim.Adam(list(enc.parameters()) + list(probe.parameters()), lr=3e-3)
    for step in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = F.binary_cross_entropy_with_logits(probe(enc(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc.eval()


class KeywordProbe(L.LightningModule):
    def __init__(self, encoder, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, len(KEYWORDS)))

    def train(self, mode=True):
        super().train(mode)
        self.encoder.eval()  # frozen, pre-trained BatchNorm statistics are kept
        return self

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


if __name__ == "__main__":
    L.seed_everything(6)
    encoder = pretrain_encoder()
    model = KeywordProbe(encoder)
    trainer = L.Trainer(
        max_epochs=15,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(*keyword_set(240, 1)), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(*keyword_set(300, 2)), batch_size=150))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
