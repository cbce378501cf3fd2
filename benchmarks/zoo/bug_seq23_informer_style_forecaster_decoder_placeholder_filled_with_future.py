"""Bug: an Informer-style encoder-decoder Transformer forecaster on synthetic multi-sine signals (random frequencies,
phases and amplitudes plus noise, from a seeded torch.Generator). The encoder reads a 48-step look-back window; the
decoder input follows the Informer recipe: the last `LABEL_LEN` = 16 known steps ("start token") followed by a
placeholder block of `HORIZON` = 16 steps, and the decoder outputs are read at the placeholder positions. MSE loss,
AdamW with a per-step cosine schedule.

The placeholder must be zeros (`torch.zeros_like(y)`); this dataset code builds the decoder input from
`torch.cat([x[-LABEL_LEN:], y])` "so the decoder sees the right length", i.e. the placeholder holds the true future
values. The decoder self-attention is not masked (as in the recipe), so each horizon output can simply copy its own
input position. Training and validation (same code path) look excellent, but nothing is forecast: at inference,
where the future is unknown and the placeholder is zeros, the model falls apart. Symptom: val MSE 0.006 (looks
perfect) but 1.14 when the placeholder is zeros as at deployment; the fixed version (zeros in training too) gets an
honest val MSE of 0.91 after the same 4 epochs."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout23"
LOOKBACK, LABEL_LEN, HORIZON = 48, 16, 16


def make_windows(n, g):
    t = torch.arange(LOOKBACK + HORIZON).float()
    freq = 0.05 + 0.25 * torch.rand(n, 2, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 2, 1, generator=g)
    amp = 0.5 + torch.rand(n, 2, 1, generator=g)
    s = (amp * torch.sin(freq * t + phase)).sum(1) + 0.1 * torch.randn(n, LOOKBACK + HORIZON, generator=g)
    x, y = s[:, :LOOKBACK], s[:, LOOKBACK:]
    dec = torch.cat([x[:, -LABEL_LEN:], y], 1)
    return x.unsqueeze(-1), dec.unsqueeze(-1), y


class InformerLite(L.LightningModule):
    def __init__(self, d=32, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc_in = nn.Linear(1, d)
        self.dec_in = nn.Linear(1, d)
        self.pos = nn.Parameter(0.02 * torch.randn(LOOKBACK + LABEL_LEN + HORIZON, d))
        self.tf = nn.Transformer(d, nhead=4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64,
                                 dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, 1)

    def forward(self, x, dec):
        src = self.enc_in(x) + self.pos[:LOOKBACK]
        tgt = self.dec_in(dec) + self.pos[LOOKBACK:]
        return self.head(self.tf(src, tgt))[:, -HORIZON:, 0]

    def training_step(self, batch, batch_idx):
        x, dec, y = batch
        loss = F.mse_loss(self(x, dec), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, dec, y = batch
        self.log("val_loss", F.mse_loss(self(x, dec), y))
        zero_dec = torch.cat([dec[:, :LABEL_LEN], torch.zeros_like(dec[:, LABEL_LEN:])], 1)
        self.log("val_loss_deploy", F.mse_loss(self(x, zero_dec), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2301)
    g = torch.Generator().manual_seed(23)
    train, val = make_windows(2400, g), make_windows(500, g)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(InformerLite(), DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=250))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={float(m['val_loss']):.3f} val_mse_zero_placeholder={float(m['val_loss_deploy']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
