"""Bug: next-step electricity-load forecaster (a small Transformer encoder that predicts x[t+1] at every position of a
96-step window of a synthetic household-load series: daily cycle, weekly modulation, AR(1) noise). To "make
attention cheaper" the author switched from a full causal mask to a chunked one and built it from block indices,
`block[:, None] >= block[None, :]` with 16-step blocks. That is block-causal, not causal: inside its own block,
position t attends to every later position of the block, including t+1, whose value is exactly its target.
Training still looks great (the loss falls fast, val is "better"), because validation uses the same mask. Measured
against the fixed causal mask (`(pos[:, None] >= pos[None, :])`): val MSE 0.105 with the chunked mask vs 0.162
with the causal one (standardised units); within 8 epochs the model has learned to partly copy the next value
instead of forecasting it."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout35"
WINDOW, BLOCK = 96, 16


def load_series(g, n=6000):
    t = torch.arange(n, dtype=torch.float32)
    noise = torch.zeros(n)
    eps = torch.randn(n, generator=g) * 0.35
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + eps[i]
    load = 2.0 + torch.sin(2 * torch.pi * t / 48) * (1 + 0.3 * torch.sin(2 * torch.pi * t / 336)) + noise
    return load


def windows(series, start, stop, stride=8):
    seg = series[start:stop]
    return seg.unfold(0, WINDOW + 1, stride).unsqueeze(-1)


class LoadTransformer(L.LightningModule):
    def __init__(self, d=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Linear(1, d)
        layer = nn.TransformerEncoderLayer(d, 4, 96, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 1)
        pos = torch.arange(WINDOW, dtype=torch.float32)[:, None]
        freq = torch.exp(-torch.arange(0, d, 2, dtype=torch.float32) / d * 4.0)
        self.register_buffer("pos", torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], 1))
        block = torch.arange(WINDOW) // BLOCK
        self.register_buffer("mask", ~(block[:, None] >= block[None, :]))

    def forward(self, x):
        h = self.encoder(self.inp(x) + self.pos, mask=self.mask)
        return self.head(h)

    def _loss(self, batch):
        (w,) = batch
        return F.mse_loss(self(w[:, :-1]), w[:, 1:])

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(351)
    series = load_series(torch.Generator().manual_seed(351))
    cut = 4800
    mean, std = series[:cut].mean(), series[:cut].std()
    series = (series - mean) / std
    train, val = windows(series, 0, cut), windows(series, cut + WINDOW, len(series))
    model = LoadTransformer()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=64))
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
