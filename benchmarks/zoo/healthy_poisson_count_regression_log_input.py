"""Healthy: Poisson regression of event counts with an MLP that outputs the log-rate, trained with
`nn.PoissonNLLLoss(log_input=True)` (its default) and AdamW with a LambdaLR linear warm-up then constant. Synthetic
tabular data (8 standardised features, counts drawn from a Poisson law whose log-rate is a non-linear function of
four of them, many zeros). Own metric: validation mean Poisson deviance 1.02 vs 1.66 for the best constant rate
(lower is better)."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout3"


def make_counts(n, gen):
    x = torch.randn(n, 8, generator=gen)
    log_rate = -0.6 + 0.7 * x[:, 0] - 0.5 * x[:, 1] + 0.4 * x[:, 2] * x[:, 3]
    return x, torch.poisson(log_rate.exp(), generator=gen)


def poisson_deviance(rate, y):
    rate = rate.clamp_min(1e-8)
    term = torch.where(y > 0, y * torch.log(y / rate), torch.zeros_like(y))
    return (2 * (term - (y - rate))).mean()


class CountRegressor(L.LightningModule):
    def __init__(self, lr=3e-3, warmup_steps=30):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
        self.loss_fn = nn.PoissonNLLLoss(log_input=True)

    def forward(self, x):
        return self.net(x).squeeze(-1)  # log of the expected count

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        log_rate = self(x)
        self.log("val_loss", self.loss_fn(log_rate, y))
        self.log("val_deviance", poisson_deviance(log_rate.exp(), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        warm = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3)
    gen = torch.Generator().manual_seed(3)
    x_tr, y_tr = make_counts(3000, gen)
    x_va, y_va = make_counts(800, gen)
    model = CountRegressor()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    const = poisson_deviance(torch.full_like(y_va, y_tr.mean().item()), y_va).item()
    print(f"val_deviance={trainer.callback_metrics['val_deviance'].item():.3f} constant_deviance={const:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
