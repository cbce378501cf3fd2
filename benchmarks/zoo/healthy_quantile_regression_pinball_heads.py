"""Healthy: quantile regression of a heteroscedastic target (y = sin(2x) + (0.1 + 0.4|x|) noise, seeded
torch.Generator) with an MLP 1-64-64-3 (GELU) predicting the 10th/50th/90th percentiles, trained with the pinball
loss; AdamW + StepLR, `max_steps=600`, `val_check_interval=0.5`. Own metric: val pinball 0.125 and 10-90% interval
coverage 0.80 (target 0.80)."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout4"
QUANTILES = (0.1, 0.5, 0.9)


def make_data(n, gen):
    x = torch.rand(n, 1, generator=gen) * 4 - 2
    y = torch.sin(2 * x[:, 0]) + (0.1 + 0.4 * x[:, 0].abs()) * torch.randn(n, generator=gen)
    return x, y


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
