"""Bug: a Transformer-encoder forecaster trained sequence-to-sequence (the output at every position t predicts the
series at t+1, inputs `x[:, :-1]`, targets `x[:, 1:]`) calls `self.encoder(h)` without the causal
`mask=nn.Transformer.generate_square_subsequent_mask(T)`: position t attends to t+1, which is its own target.
Model: linear input projection, sinusoidal positional encoding, 2 pre-norm TransformerEncoder layers, linear head;
MSE, AdamW with warm-up + cosine (LambdaLR per step), `max_steps`. Data: synthetic noisy multi-sine series
(random periods, phases, amplitudes; seeded torch.Generator). Own metric: val MSE of the one-step forecast and a
"deployment" MSE where the future is not available (the series is forecast from a prefix, one step at a time).
Fixed (causal mask passed): val MSE 0.25, deployment MSE 0.22. With the bug: val MSE 0.07 (too good to be true:
below the noise floor) and deployment MSE 0.87."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage", "target-leakage"}
SPLIT = "heldout4"


def make_series(n, gen, length=25):
    t = torch.arange(length).float()
    period = torch.rand(n, 2, generator=gen) * 10 + 6
    phase = torch.rand(n, 2, generator=gen) * 2 * math.pi
    amp = torch.rand(n, 2, generator=gen) * 0.8 + 0.4
    x = (amp[..., None] * torch.sin(2 * math.pi * t / period[..., None] + phase[..., None])).sum(1)
    return x + 0.3 * torch.randn(n, length, generator=gen)


class Forecaster(nn.Module):
    def __init__(self, d_model=32, n_layers=2, max_len=64):
        super().__init__()
        self.inp = nn.Linear(1, d_model)
        pos = torch.arange(max_len).float()[:, None]
        div = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(1000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pos", pe.unsqueeze(0))
        layer = nn.TransformerEncoderLayer(d_model, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x):
        h = self.inp(x.unsqueeze(-1)) + self.pos[:, : x.shape[1]]
        h = self.encoder(h)  # BUG: no causal mask
        return self.head(h).squeeze(-1)


class LitForecaster(L.LightningModule):
    def __init__(self, max_steps, warmup=30):
        super().__init__()
        self.model = Forecaster()
        self.max_steps, self.warmup = max_steps, warmup

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x[:, :-1]), x[:, 1:])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_loss", F.mse_loss(self(x[:, :-1]), x[:, 1:]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)

        def lr_lambda(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            return 0.5 * (1 + math.cos(math.pi * (step - self.warmup) / max(1, self.max_steps - self.warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def rolling_forecast_mse(model, series, prefix=12):
    model.eval()
    hist = series[:, :prefix].clone()
    errs = []
    for t in range(prefix, series.shape[1]):
        nxt = model(hist)[:, -1]
        errs.append((nxt - series[:, t]) ** 2)
        hist = torch.cat([hist, series[:, t : t + 1]], 1)  # observed value appended once it is known
    return torch.stack(errs).mean().item()


def main():
    L.seed_everything(41)
    gen = torch.Generator().manual_seed(41)
    train, val, test = make_series(2000, gen), make_series(300, gen), make_series(300, gen)
    max_steps = 400
    model = LitForecaster(max_steps)
    trainer = L.Trainer(max_steps=max_steps, val_check_interval=100, check_val_every_n_epoch=None, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=300))
    print(f"val_mse={trainer.callback_metrics['val_loss'].item():.3f} "
          f"deploy_mse={rolling_forecast_mse(model, test):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
