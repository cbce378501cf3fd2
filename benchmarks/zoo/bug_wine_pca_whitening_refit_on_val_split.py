"""Bug: wine cultivar classifier, a LightningDataModule with a scikit-learn preprocessing pipeline
(StandardScaler -> PCA(6 components, whiten=True)) in front of a small MLP. `setup` fits the pipeline on the
training rows, but the validation features go through `self.pipeline.fit_transform(x_val)` - a copy-paste of the
training line - so the pipeline is refitted on the 54 validation rows. Principal axes fitted on another sample come
out with different signs, a different order where eigenvalues are close, and a different whitening scale: the
validation inputs live in another coordinate system than the one the model was trained on (and the pipeline object
used afterwards for prediction is the one fitted on validation). Symptom: val acc 0.83 / val loss 0.54 vs 1.00 /
0.01 with `transform`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout10"


class WineDataModule(L.LightningDataModule):
    def __init__(self, n_components=6, batch_size=16, seed=3):
        super().__init__()
        self.n_components = n_components
        self.batch_size = batch_size
        self.seed = seed

    def setup(self, stage=None):
        x, y = load_wine(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, stratify=y, random_state=self.seed)
        self.pipeline = make_pipeline(StandardScaler(), PCA(n_components=self.n_components, whiten=True))
        x_train = self.pipeline.fit_transform(x_train)
        x_val = self.pipeline.fit_transform(x_val)
        self.train_ds = TensorDataset(torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train))
        self.val_ds = TensorDataset(torch.tensor(x_val, dtype=torch.float32), torch.tensor(y_val))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class WineMLP(L.LightningModule):
    def __init__(self, n_in=6, n_classes=3, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, n_classes))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(77)
    dm = WineDataModule()
    model = WineMLP()
    trainer = L.Trainer(
        max_epochs=40,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="wine_pca"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val/acc']):.3f} val_loss={float(m['val/loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
