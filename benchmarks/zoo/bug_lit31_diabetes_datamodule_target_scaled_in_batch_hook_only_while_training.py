"""Bug: diabetes progression regression with a LightningDataModule. `setup(stage)` splits the data and fits a
feature scaler on the training split; the target is standardised later, on the fly, in the datamodule's
`on_before_batch_transfer` hook, which the author guarded with `if self.trainer.training:` so that "validation
reports in original units". But the model learns to predict the *standardised* target, and `validation_step` scores
those predictions (around 0) against raw disease-progression values (25..346), so val loss is the raw targets' second
moment, far worse than predicting the mean, while train loss falls normally. Nothing crashes; the val curve is just
flat and huge and EarlyStopping-style monitoring on it is meaningless. Measured: final train loss 0.372, val loss
28,747; with the hook applied to every stage the same run ends at val loss 0.40 (standardised units).
"""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout31"


class DiabetesDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32, val_fraction=0.2):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage):
        data = load_diabetes(scaled=False)
        x = torch.tensor(data.data, dtype=torch.float32)
        y = torch.tensor(data.target, dtype=torch.float32)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
        n_val = int(len(x) * self.hparams.val_fraction)
        tr, va = perm[n_val:], perm[:n_val]
        self.x_mean, self.x_std = x[tr].mean(0), x[tr].std(0)
        self.y_mean, self.y_std = y[tr].mean(), y[tr].std()
        scale = lambda t: (t - self.x_mean) / self.x_std  # noqa: E731
        self.train_set = TensorDataset(scale(x[tr]), y[tr])
        self.val_set = TensorDataset(scale(x[va]), y[va])

    def on_before_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        if self.trainer.training:
            y = (y - self.y_mean) / self.y_std
        return x, y

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=128)


class ProgressionRegressor(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)


def main():
    L.seed_everything(314)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ProgressionRegressor(), datamodule=DiabetesDataModule())
    print(f"SYMPTOM train_loss={trainer.callback_metrics['train_loss_epoch'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.1f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
