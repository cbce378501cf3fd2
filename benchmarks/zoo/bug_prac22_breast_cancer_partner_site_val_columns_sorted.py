"""Bug: a breast-cancer classifier validated on two sites. The LightningDataModule splits the data into the home
site (train and an internal validation set) and a partner site whose cases arrive as JSON records (one dict per
case, feature name -> value), and serves two validation dataloaders (`val_loss/dataloader_idx_0` home,
`.../dataloader_idx_1` partner). Features are standardised with the training statistics; an MLP with dropout is
trained with cross-entropy, AdamW and a cosine schedule stepped per step, accuracy from torchmetrics.

The partner records are turned into a matrix over `sorted(set().union(*records) - {"target"})` (the union of keys,
because some exports drop empty fields), which orders the 30 features alphabetically ("area error", "compactness
error", ...) instead of in `feature_names` order. Every partner column is therefore scaled with another column's
statistics and fed to the weight of another feature. Nothing fails: the shapes match and the home validation looks
great, while on the partner site the loss explodes as the model grows confident (an "area" column divided by a
"smoothness" std gives values in the thousands). Symptom: partner val loss 1223 with accuracy 0.627 (the share of
the majority class there) vs 0.089 and 0.970 with the columns taken in `feature_names` order; home val loss 0.039
either way."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout22"


def to_dataset(x, y, mean, std):
    return TensorDataset(torch.tensor((x - mean) / std, dtype=torch.float32), torch.tensor(y))


class TwoSiteDataModule(L.LightningDataModule):
    def setup(self, stage):
        data = load_breast_cancer()
        order = np.random.default_rng(4).permutation(len(data.target))
        home, partner = order[:400], order[400:]
        x, y = data.data[home], data.target[home]
        self.mean, self.std = x[:320].mean(0), x[:320].std(0)
        self.train_set = to_dataset(x[:320], y[:320], self.mean, self.std)
        self.home_val = to_dataset(x[320:], y[320:], self.mean, self.std)
        records = [dict(zip(data.feature_names, data.data[i]), target=data.target[i]) for i in partner]
        self.partner_val = self.partner_dataset(records)

    def partner_dataset(self, records):
        features = sorted(set().union(*records) - {"target"})
        x = np.array([[r[name] for name in features] for r in records])
        y = np.array([r["target"] for r in records])
        return to_dataset(x, y, self.mean, self.std)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return [DataLoader(self.home_val, batch_size=128), DataLoader(self.partner_val, batch_size=128)]


class TumourMLP(L.LightningModule):
    def __init__(self, lr=3e-3, epochs=25):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 2))
        self.acc = nn.ModuleList([MulticlassAccuracy(2, average="micro") for _ in range(2)])

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        logits = self(x)
        self.acc[dataloader_idx].update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.acc[dataloader_idx])

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        steps = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2203)
    model = TumourMLP()
    trainer = L.Trainer(max_epochs=model.hparams.epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, TwoSiteDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM home_val_loss={float(m['val_loss/dataloader_idx_0']):.3f} "
          f"partner_val_loss={float(m['val_loss/dataloader_idx_1']):.3f} "
          f"partner_val_acc={float(m['val_acc/dataloader_idx_1']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
