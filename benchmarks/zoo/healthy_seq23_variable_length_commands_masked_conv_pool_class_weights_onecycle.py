"""Healthy: a small convolutional encoder classifying variable-length synthetic voice commands (5 commands, each a
chain of two to four pitch glides with its own rhythm; durations 0.3-0.7 s at 2 kHz, random speed, loudness and
noise; seeded torch.Generator). The commands are imbalanced (40/25/15/12/8 %). Features are per-clip log-power STFT
frames, standardised per bin with statistics from the real frames of the training clips only.

Done right: the collate pads frames to the longest clip of the batch and returns a frame mask; the padded frames are
zeroed again after every convolution (so the convolution at the last real frame sees the same zeros whether the
clip was padded or not, and a clip's output never depends on its batch-mates' lengths), pooling is a masked mean
dividing by each clip's own frame count; the imbalance is handled with inverse-frequency class weights in the
cross-entropy (normalised to mean 1) and the validation metric is the macro (balanced) accuracy; OneCycleLR is
stepped per batch with total_steps from `trainer.estimated_stepping_batches`. Symptom measured: val balanced
accuracy 1.000 (val loss 0.001)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout23"
SR, N_CLASSES = 2000, 5
PRIOR = torch.tensor([0.40, 0.25, 0.15, 0.12, 0.08])
PATTERNS = [[250., 500.], [500., 250., 500.], [700., 350.], [300., 450., 600., 750.], [650., 650., 300.]]


def commands(n, g):
    ys = torch.multinomial(PRIOR, n, replacement=True, generator=g)
    clips = []
    for y in ys.tolist():
        dur = 0.3 + 0.4 * float(torch.rand(1, generator=g))
        t = torch.arange(int(dur * SR)).float() / SR
        wav = 0.05 * torch.randn(len(t), generator=g)
        pat = PATTERNS[y]
        seg = 0.8 * dur / len(pat)
        amp = 0.3 + float(torch.rand(1, generator=g))
        for k, f0 in enumerate(pat):
            on = ((t >= 0.1 * dur + k * seg) & (t < 0.1 * dur + (k + 1) * seg)).float()
            wav += amp * on * torch.sin(2 * math.pi * f0 * (0.95 + 0.1 * float(torch.rand(1, generator=g))) * t)
        spec = torch.stft(wav, n_fft=64, hop_length=32, window=torch.hann_window(64), return_complex=True)
        clips.append(((spec.abs() ** 2 + 1e-6).log().T, y))
    return clips


def standardise(train, val):
    frames = torch.cat([x for x, _ in train])
    mu, sd = frames.mean(0), frames.std(0)
    return [((x - mu) / sd, y) for x, y in train], [((x - mu) / sd, y) for x, y in val]


def collate(items):
    T = max(x.shape[0] for x, _ in items)
    feats = torch.zeros(len(items), T, items[0][0].shape[1])
    mask = torch.zeros(len(items), T, dtype=torch.bool)
    for i, (x, _) in enumerate(items):
        feats[i, :len(x)], mask[i, :len(x)] = x, True
    return feats, mask, torch.tensor([y for _, y in items])


class CommandNet(L.LightningModule):
    def __init__(self, class_weights, n_bins=33, ch=48, lr=5e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["class_weights"])
        self.register_buffer("class_weights", class_weights)
        self.convs = nn.ModuleList([nn.Conv1d(n_bins, ch, 3, padding=1), nn.Conv1d(ch, ch, 3, padding=2, dilation=2),
                                    nn.Conv1d(ch, ch, 3, padding=4, dilation=4)])
        self.head = nn.Linear(ch, N_CLASSES)

    def forward(self, feats, mask):
        m = mask[:, None, :].float()
        h = feats.transpose(1, 2) * m
        for conv in self.convs:
            h = F.gelu(conv(h)) * m
        pooled = h.sum(-1) / m.sum(-1)
        return self.head(pooled)

    def training_step(self, batch, batch_idx):
        feats, mask, y = batch
        loss = F.cross_entropy(self(feats, mask), y, weight=self.class_weights)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        feats, mask, y = batch
        logits = self(feats, mask)
        pred = logits.argmax(-1)
        recalls = torch.stack([(pred[y == c] == c).float().mean() for c in range(N_CLASSES) if (y == c).any()])
        self.log_dict({"val_loss": F.cross_entropy(logits, y, weight=self.class_weights),
                       "val_bal_acc": recalls.mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2310)
    g = torch.Generator().manual_seed(238)
    train, val = standardise(commands(1200, g), commands(400, g))
    counts = torch.bincount(torch.tensor([y for _, y in train]), minlength=N_CLASSES).float()
    weights = counts.sum() / counts
    weights = weights / weights.mean()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CommandNet(weights), DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=400, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_balanced_acc={float(m['val_bal_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
