"""Healthy: regression of synthetic Poisson counts (rate exp(0.6 * w.x + 1.5) over 12 standard-normal features, a
seeded torch.Generator) with an MLP trained with L1 loss on `log1p(count)`; the same transform is applied to the
training and the validation targets (one `make_dataset` for both). Adam with StepLR (x0.3 every 5 epochs). Reaches a
val L1 of ~0.32 in log space (the constant median's is ~0.50; Poisson noise sets the floor)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"


def make_counts(n, weights, gen):
    x = torch.randn(n, 12, generator=gen)
    rate = torch.exp(0.6 * x @ weights + 1.5)
    return x, torch.poisson(rate, generator=gen)


def make_dataset(x, counts):
    return TensorDataset(x, torch.log1p(counts))


class CountRegressor(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(12, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.l1_loss(self(x), y)
        self.log("train_l1", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_l1", F.l1_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.3)]


def main():
    L.seed_everything(11)
    gen = torch.Generator().manual_seed(11)
    weights = torch.randn(12, generator=gen) / 12 ** 0.5
    x_tr, c_tr = make_counts(3000, weights, gen)
    x_va, c_va = make_counts(600, weights, gen)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CountRegressor(), DataLoader(make_dataset(x_tr, c_tr), batch_size=64, shuffle=True),
                DataLoader(make_dataset(x_va, c_va), batch_size=256))
    baseline = (torch.log1p(c_va) - torch.log1p(c_tr).median()).abs().mean()
    print(f"val_l1={trainer.callback_metrics['val_l1'].item():.3f} constant_median_l1={baseline.item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
