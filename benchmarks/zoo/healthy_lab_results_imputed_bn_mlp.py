"""Healthy: binary classification of synthetic lab-result rows (12 measurements, a seeded torch.Generator; the label
follows a non-linear rule on four of them). The lab export writes -999 for a missing measurement (about 3 % of the
cells of four columns); the pipeline turns the sentinel into NaN, imputes the training median, adds a
missing-indicator column per affected measurement and standardises with training statistics. MLP with BatchNorm1d,
BCE-with-logits, Adam with ExponentialLR(gamma=0.9) per epoch. Own metric: val acc 0.89, val loss 0.28."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout3"
SENTINEL = -999.0
GAPPY = [0, 1, 2, 5]


def make_lab_rows(n, gen):
    x = torch.randn(n, 12, generator=gen) * torch.linspace(0.5, 3.0, 12) + torch.linspace(1.0, 40.0, 12)
    z = (x - torch.linspace(1.0, 40.0, 12)) / torch.linspace(0.5, 3.0, 12)
    score = 1.2 * z[:, 0] - z[:, 1] + 0.8 * z[:, 2] * z[:, 5] + 0.5 * torch.randn(n, generator=gen)
    y = (score > 0).float()
    for c in GAPPY:
        x[torch.rand(n, generator=gen) < 0.03, c] = SENTINEL
    return x, y


def prepare(x, stats=None):
    x = x.clone()
    missing = x[:, GAPPY] == SENTINEL
    x[x == SENTINEL] = float("nan")
    if stats is None:
        median = x.nanmedian(0).values
        filled = torch.where(torch.isnan(x), median, x)
        stats = median, filled.mean(0), filled.std(0)
    median, mu, sd = stats
    x = (torch.where(torch.isnan(x), median, x) - mu) / sd
    return torch.cat([x, missing.float()], 1), stats


class LabMLP(L.LightningModule):
    def __init__(self, n_in, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                 nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)]


def main():
    L.seed_everything(12)
    gen = torch.Generator().manual_seed(12)
    x, y = make_lab_rows(3000, gen)
    x_tr, stats = prepare(x[:2400])
    x_va, _ = prepare(x[2400:], stats)
    model = LabMLP(x_tr.shape[1])
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y[:2400]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y[2400:]), batch_size=256))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
