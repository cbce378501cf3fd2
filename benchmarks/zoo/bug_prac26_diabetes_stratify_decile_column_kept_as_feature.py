"""Bug: disease-progression regression on the sklearn diabetes table (10 features, 442 patients). Because the target
is skewed, the DataModule does a stratified split on target deciles: it computes the decile of every patient's
progression score, stacks it as an extra column onto the feature matrix so that the shuffle keeps the two aligned,
splits with `train_test_split(..., stratify=table[:, -1])`, and standardizes with training statistics. A 2-layer MLP
regresses the standardized target with MSE, Adam, gradient clipping at 1.0 and a per-step cosine schedule declared in
`lr_scheduler_config` (interval "step", T_max = trainer.estimated_stepping_batches).

The decile column is never dropped after the split, so the network gets 11 inputs and the eleventh is the binned label
itself (computed from the full target for both splits). Training and validation both look excellent because validation
carries the same leaked column. Symptom: val MSE (standardized target) 0.015 (train 0.014) vs 0.485 with the column
dropped; the leaked model is not usable on new patients, whose decile is unknown."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout26"


class DiabetesData(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        x, y = load_diabetes(return_X_y=True)
        deciles = np.digitize(y, np.quantile(y, np.linspace(0.1, 0.9, 9)))
        table = np.column_stack([x, deciles])
        x_tr, x_va, y_tr, y_va = train_test_split(table, y, test_size=0.2, stratify=table[:, -1], random_state=7)
        mean, std = x_tr.mean(0), x_tr.std(0)
        y_mean, y_std = y_tr.mean(), y_tr.std()
        self.n_features = x_tr.shape[1]
        to_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        self.train_set = TensorDataset(to_t((x_tr - mean) / std), to_t((y_tr - y_mean) / y_std))
        self.val_set = TensorDataset(to_t((x_va - mean) / std), to_t((y_va - y_mean) / y_std))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=128)


class ProgressionMLP(L.LightningModule):
    def __init__(self, n_features, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}


def main():
    L.seed_everything(442)
    dm = DiabetesData()
    dm.setup("fit")
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, gradient_clip_val=1.0,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ProgressionMLP(dm.n_features), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={float(m['val_loss']):.3f} train_mse={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
