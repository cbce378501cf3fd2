"""Bug: heteroscedastic regression on sklearn's diabetes set (features and target standardized with the training
split's statistics): an MLP trunk with two heads, the mean and the variance, trained with the Gaussian negative
log-likelihood written out by hand, `0.5 * log(var) + (y - mu)^2 / (2 * var)`. The variance head is made positive
with `F.relu` instead of `F.softplus(...) + eps`: every sample whose variance pre-activation is negative (about half
of them at initialisation) gets var = 0 exactly, so log(0) = -inf and (y - mu)^2 / 0 = inf, and the loss and every
gradient are non-finite from the first step; the weights turn to NaN. AdamW, ReduceLROnPlateau on val loss.
Symptom (run without the suite's callbacks): train and val NLL nan from the first epoch, val MAE (target std
units) nan vs 0.529 with `softplus(...) + 1e-6`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout8"


class HeteroscedasticMLP(L.LightningModule):
    def __init__(self, n_features=10, hidden=64):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_features, hidden), nn.SiLU(), nn.Dropout(0.1),
                                   nn.Linear(hidden, hidden), nn.SiLU())
        self.mean_head = nn.Linear(hidden, 1)
        self.var_head = nn.Linear(hidden, 1)

    def forward(self, x):
        h = self.trunk(x)
        mu = self.mean_head(h).squeeze(-1)
        var = F.relu(self.var_head(h)).squeeze(-1)
        return mu, var

    @staticmethod
    def nll(mu, var, y):
        return (0.5 * torch.log(var) + (y - mu) ** 2 / (2 * var)).mean()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.nll(*self(x), y)
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        mu, var = self(x)
        self.log("val_loss", self.nll(mu, var, y))
        self.log("val_mae", (mu - y).abs().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(17)
    x, y = load_diabetes(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=4)
    mx, sx, my, sy = x_tr.mean(0), x_tr.std(0), y_tr.mean(), y_tr.std()
    to_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_t((x_tr - mx) / sx), to_t((y_tr - my) / sy))
    val = TensorDataset(to_t((x_va - mx) / sx), to_t((y_va - my) / sy))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(HeteroscedasticMLP(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=89))
    print(f"val_mae={trainer.callback_metrics['val_mae'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
