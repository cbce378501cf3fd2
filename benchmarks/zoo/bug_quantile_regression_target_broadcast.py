"""Bug: a quantile-regression MLP predicts the 10th/50th/90th percentiles of a heteroscedastic target with the
pinball loss; the model returns `(B, 3)` and the pinball helper does `err = y[:, None] - pred` correctly for the
batch, but the Dataset stores targets as `(N, 1)` (`y.reshape(-1, 1)`, kept from an sklearn pipeline), so `y[:, None]`
is `(B, 1, 1)` and `err` broadcasts to `(B, B, 3)`: every prediction is scored against every target of the batch
and the model learns the marginal quantiles, ignoring x. Model: MLP 1-64-64-3 with GELU, AdamW, StepLR, max_steps
with val_check_interval. Data: y = sin(2x) + (0.1 + 0.4|x|) * noise, x uniform in [-2, 2] (seeded torch.Generator).
Own metric: val pinball loss and 10-90% interval coverage. Fixed (targets stored as (N,)): val pinball 0.125,
coverage 0.80. With the bug: val pinball 0.21, coverage 0.82 from intervals that do not follow x (the broadcast loss's optimum
is the marginal quantile)."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout4"
QUANTILES = (0.1, 0.5, 0.9)


def make_data(n, gen):
    x = torch.rand(n, 1, generator=gen) * 4 - 2
    y = torch.sin(2 * x[:, 0]) + (0.1 + 0.4 * x[:, 0].abs()) * torch.randn(n, generator=gen)
    return x, y.reshape(-1, 1)  # BUG: (N, 1), kept from the sklearn pipeline


def pinball(pred, y, qs):
    q = torch.tensor(qs, device=pred.device)
    err = y[:, None] - pred
    return torch.maximum(q * err, (q - 1) * err).mean()


class LitQuantile(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = pinball(self(x), y, QUANTILES)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        yv = y.reshape(-1)
        err = yv[:, None] - pred
        q = torch.tensor(QUANTILES)
        self.log("val_pinball", torch.maximum(q * err, (q - 1) * err).mean())
        self.log("val_coverage", ((yv >= pred[:, 0]) & (yv <= pred[:, 2])).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)]


def main():
    L.seed_everything(101)
    gen = torch.Generator().manual_seed(101)
    x_tr, y_tr = make_data(4000, gen)
    x_va, y_va = make_data(1000, gen)
    trainer = L.Trainer(max_steps=600, val_check_interval=0.5, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitQuantile(), DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=1000))
    m = trainer.callback_metrics
    print(f"val_pinball={m['val_pinball'].item():.3f} val_coverage={m['val_coverage'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
