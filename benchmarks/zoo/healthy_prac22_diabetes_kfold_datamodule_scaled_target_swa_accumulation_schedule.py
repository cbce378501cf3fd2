"""Healthy: diabetes progression regression run as one fold of a 5-fold cross-validation (the fold index is a
DataModule argument, one job per fold). The DataModule shuffles once with a fixed seed via KFold(shuffle=True),
fits the feature standardisation *and* the target mean/std on the training fold only, and applies them to the
validation fold. A LayerNorm MLP is trained with Huber loss on the standardised target, AdamW with a per-epoch
cosine schedule, gradient clipping by norm, Lightning's GradientAccumulationScheduler (1 batch of 16 at first, 2
from epoch 4, for a quieter gradient late in training) and StochasticWeightAveraging over the last 30 % of epochs
(no BatchNorm, so no statistics to recompute). Validation reports MSE in original units via torchmetrics and the
R^2. Val MSE 3167, R^2 0.443, in the range linear models reach on this data."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import GradientAccumulationScheduler, StochasticWeightAveraging
from sklearn.datasets import load_diabetes
from sklearn.model_selection import KFold
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MeanSquaredError, R2Score

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"


class DiabetesFoldDataModule(L.LightningDataModule):
    def __init__(self, fold=0, n_folds=5, batch_size=16):
        super().__init__()
        self.fold, self.n_folds, self.batch_size = fold, n_folds, batch_size

    def setup(self, stage):
        x, y = load_diabetes(return_X_y=True)
        tr, va = list(KFold(self.n_folds, shuffle=True, random_state=3).split(x))[self.fold]
        x_mean, x_std = x[tr].mean(0), x[tr].std(0)
        self.y_mean, self.y_std = float(y[tr].mean()), float(y[tr].std())

        def dataset(idx):
            return TensorDataset(torch.tensor((x[idx] - x_mean) / x_std, dtype=torch.float32),
                                 torch.tensor((y[idx] - self.y_mean) / self.y_std, dtype=torch.float32))

        self.train_set, self.val_set = dataset(tr), dataset(va)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=128)


class ProgressionMLP(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.LayerNorm(64), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 1))
        self.val_mse, self.val_r2 = MeanSquaredError(), R2Score()

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.huber_loss(self(x), y, delta=1.0)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        dm = self.trainer.datamodule
        self.log("val_loss", F.huber_loss(pred, y, delta=1.0))
        self.val_mse.update(pred * dm.y_std + dm.y_mean, y * dm.y_std + dm.y_mean)
        self.val_r2.update(pred, y)
        self.log("val_mse", self.val_mse)
        self.log("val_r2", self.val_r2)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2213)
    callbacks = [GradientAccumulationScheduler(scheduling={0: 1, 4: 2}),
                 StochasticWeightAveraging(swa_lrs=5e-4, swa_epoch_start=0.7)]
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=callbacks + lightning_sanity.default_callbacks())
    trainer.fit(ProgressionMLP(), DiabetesFoldDataModule(fold=2))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={float(m['val_mse']):.0f} val_r2={float(m['val_r2']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
