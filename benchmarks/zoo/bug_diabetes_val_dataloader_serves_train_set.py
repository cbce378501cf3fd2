"""Bug: the DataModule's `val_dataloader` serves the training set (`self.train_set`, a copy-paste slip from
`train_dataloader`), so "validation" is the training data in eval mode and model selection or early stopping would
trust a memorised score. Otherwise the same script as the healthy twin: regression on sklearn's diabetes set served
by a LightningDataModule (train / val / test split with a seeded generator, features and target standardised with
training statistics inside `setup`). MLP with LayerNorm and dropout, MSE, AdamW with OneCycleLR stepped per
optimizer step, `accumulate_grad_batches=2` and `gradient_clip_val=0.5`. Own metric: test MSE 0.50 in standardised
units (R^2 about 0.5; a constant gives 1.0); the 70-patient validation split gives 0.82. Measured with the bug:
"val" MSE 0.22 while the test MSE is 0.50."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout3"


class DiabetesData(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        x, y = load_diabetes(return_X_y=True)
        x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
        tr, va, te = perm[:300], perm[300:370], perm[370:]
        mu, sd, ym, ys = x[tr].mean(0), x[tr].std(0), y[tr].mean(), y[tr].std()
        sets = [TensorDataset((x[i] - mu) / sd, (y[i] - ym) / ys) for i in (tr, va, te)]
        self.train_set, self.val_set, self.test_set = sets

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        # BUG: copied from train_dataloader, still the training set
        return DataLoader(self.train_set, batch_size=128)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=128)


class DiabetesMLP(L.LightningModule):
    def __init__(self, max_lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.LayerNorm(64), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.max_lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4)
    dm = DiabetesData()
    model = DiabetesMLP()
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, accumulate_grad_batches=2,
                        gradient_clip_val=0.5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    val_mse = trainer.callback_metrics["val_mse"].item()
    test_mse = trainer.test(model, datamodule=dm, verbose=False)[0]["test_mse"]
    print(f"val_mse={val_mse:.3f} test_mse={test_mse:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
