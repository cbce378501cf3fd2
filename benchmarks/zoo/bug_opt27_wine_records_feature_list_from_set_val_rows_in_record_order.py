"""Bug: a wine MLP in a LightningDataModule that works from JSON-style records (one dict per sample, as exported by
the lab's LIMS). The training features are selected with `features = sorted(set(record) - {"target", "batch_id"})`
(a set, so it is sorted for determinism: alphabetical order), while the validation rows are built by a second helper
written earlier that keeps every key except the dropped ones in the record's own order. Standardisation is done per
key with training statistics, so both arrays are 13 well-scaled columns and nothing complains; but almost every
validation column is fed to the weights of a different feature. Training converges normally while validation ends
far worse than predicting the class prior, the more so the more confident the model grows.
Measured (own metric): buggy val loss 3.10 / acc 0.30 (prior baseline 1.09); fixed (validation rows built with the
same `features` list) val loss 0.10 / acc 0.94."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout27"


DROP = {"target", "batch_id"}


def load_records():
    data = load_wine()
    records = []
    for i, (row, target) in enumerate(zip(data.data, data.target)):
        rec = {"batch_id": i}
        rec.update(zip(data.feature_names, row.tolist()))
        rec["target"] = int(target)
        records.append(rec)
    return records


def normalise(rec, stats):
    """Standardise each measurement by name with training statistics; ids and targets pass through."""
    return {k: (v - stats[k][0]) / stats[k][1] if k in stats else v for k, v in rec.items()}


def eval_features(records):
    return np.array([[v for k, v in rec.items() if k not in DROP] for rec in records])


class WineFrameDataModule(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        records = load_records()
        train_recs, val_recs = train_test_split(records, test_size=0.3, random_state=7,
                                                stratify=[r["target"] for r in records])
        features = sorted(set(records[0]) - DROP)
        stats = {k: (np.mean([r[k] for r in train_recs]), np.std([r[k] for r in train_recs])) for k in features}
        train_recs = [normalise(r, stats) for r in train_recs]
        val_recs = [normalise(r, stats) for r in val_recs]
        X_tr = np.array([[rec[k] for k in features] for rec in train_recs])
        X_va = eval_features(val_recs)
        self.train_ds = TensorDataset(torch.tensor(X_tr, dtype=torch.float32),
                                      torch.tensor([r["target"] for r in train_recs]))
        self.val_ds = TensorDataset(torch.tensor(X_va, dtype=torch.float32),
                                    torch.tensor([r["target"] for r in val_recs]))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class WineMLP(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(207)
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineMLP(), datamodule=WineFrameDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
