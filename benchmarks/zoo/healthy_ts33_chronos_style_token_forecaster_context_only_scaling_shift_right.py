"""Healthy: a Chronos-style forecaster treats forecasting as seq2seq over tokens. Each series window (48 context
steps, 12 horizon steps) is mean-scaled and quantised into 64 bins; a small encoder-decoder transformer reads the
context tokens and predicts the horizon tokens with cross-entropy, batches are HF-style dicts (`input_ids`,
`attention_mask`, `labels`, output object with `.logits`). The leak-prone steps are done right: the scale is the mean
absolute value of the context only (the horizon is quantised with that same scale, never with its own); the decoder
input is `labels` shifted right behind a BOS token inside the model, and the decoder self-attention has a causal
mask; validation windows come from other series (split by series id, not by window). Measured: val loss 2.77
(train 2.67) vs ln 65 = 4.17 for a uniform guess; the rest is the noise across the fine 64-level grid."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout33"
CONTEXT, HORIZON, BINS = 48, 12, 64
BOS = BINS


def simulate_series(n_series, length, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    level = 5 + 20 * torch.rand(n_series, 1, generator=g)
    period = torch.randint(8, 25, (n_series, 1), generator=g).float()
    phase = 6.28 * torch.rand(n_series, 1, generator=g)
    season = 0.4 * torch.sin(2 * torch.pi * t / period + phase)
    noise = 0.05 * torch.randn(n_series, length, generator=g)
    return level * (1 + season + noise)


def tokenize(series):
    rows = []
    for s in series:
        for start in range(0, len(s) - CONTEXT - HORIZON + 1, 12):
            ctx, fut = s[start:start + CONTEXT], s[start + CONTEXT:start + CONTEXT + HORIZON]
            scale = ctx.abs().mean()
            edges = torch.linspace(0.0, 2.0, BINS - 1)
            rows.append({"input_ids": torch.bucketize(ctx / scale, edges),
                         "labels": torch.bucketize(fut / scale, edges)})
    return rows


def collate(rows):
    ids = torch.stack([r["input_ids"] for r in rows])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.stack([r["labels"] for r in rows])}


class Output:
    def __init__(self, logits, loss):
        self.logits, self.loss = logits, loss


class TokenForecaster(L.LightningModule):
    def __init__(self, d=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(BINS + 1, d)
        self.enc_pos, self.dec_pos = nn.Embedding(CONTEXT, d), nn.Embedding(HORIZON, d)
        self.tf = nn.Transformer(d, 4, 2, 2, 128, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, BINS + 1)

    def forward(self, input_ids, attention_mask, labels):
        dec_in = torch.cat([torch.full_like(labels[:, :1], BOS), labels[:, :-1]], 1)  # shift right
        src = self.emb(input_ids) + self.enc_pos(torch.arange(CONTEXT))
        tgt = self.emb(dec_in) + self.dec_pos(torch.arange(HORIZON))
        causal = nn.Transformer.generate_square_subsequent_mask(HORIZON)
        h = self.tf(src, tgt, tgt_mask=causal, tgt_is_causal=True,
                    src_key_padding_mask=attention_mask == 0, memory_key_padding_mask=attention_mask == 0)
        logits = self.head(h)
        return Output(logits, F.cross_entropy(logits.flatten(0, 1), labels.flatten()))

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3310)
    series = simulate_series(60, 240, seed=3)
    order = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    train, val = tokenize(series[order[:48]]), tokenize(series[order[48:]])
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TokenForecaster(), DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=64, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
