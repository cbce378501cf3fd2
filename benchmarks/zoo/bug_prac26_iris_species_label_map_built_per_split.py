"""Bug: an iris species classifier fed from a small "CSV-like" table with string labels. A LightningDataModule
shuffles the rows, cuts 105 train / 45 val in `setup("fit")`, standardizes with training statistics, and encodes the
species names to integers with a small helper. A 4-32-32-3 MLP is trained with cross-entropy, AdamW and a per-epoch
StepLR; torchmetrics accuracy is logged on validation.

The helper builds the label map from the order in which the species first appear in the rows it is given (like
`pd.unique`, written with `np.unique(..., return_index=True)`), and the DataModule calls it separately on the train and
the val rows. After the shuffle the two frames meet the species in a different order, so "versicolor" is class 1 in
training and class 0 in validation. Training is perfectly healthy (train loss falls to 0.027); the model is right, the
validation labels are permuted. Symptom: val accuracy 0.333 and val loss 5.10 (above ln 3) vs 0.956 and 0.097 with one
map fitted on the training frame and reused for validation."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from sklearn.datasets import load_iris
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout26"


def encode_species(species):
    names, first_seen = np.unique(species, return_index=True)
    mapping = {name: i for i, name in enumerate(names[np.argsort(first_seen)])}
    return torch.tensor([mapping[name] for name in species])


class IrisDataModule(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        iris = load_iris()
        species = iris.target_names[iris.target]
        order = np.random.default_rng(11).permutation(len(species))
        x, species = iris.data[order], species[order]
        mean, std = x[:105].mean(0), x[:105].std(0)
        x = torch.tensor((x - mean) / std, dtype=torch.float32)
        self.train_set = TensorDataset(x[:105], encode_species(species[:105]))
        self.val_set = TensorDataset(x[105:], encode_species(species[105:]))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=45)


class IrisMLP(L.LightningModule):
    def __init__(self, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=3)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.val_acc)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.5),
                                 "interval": "epoch"}}


def main():
    L.seed_everything(26)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(IrisMLP(), datamodule=IrisDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
