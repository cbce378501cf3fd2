"""Bug: a GRU regressor that reads each diabetes patient's record as a short sequence, one step per clinical
measurement (value + a learned embedding of which measurement it is), and predicts disease progression.
To get a split stratified on the (continuous) target, the DataModule stacks features and target into one record
array, splits the records with quantile bins as strata, fits a `StandardScaler` on the training records and builds
the sequences from the scaled records; the target is read from the record's last column.

What is wrong: the input sequences are built from the whole scaled record, not `records[:, :-1]`, so the 11th step
of every input sequence is the (standardised) label itself. The sequence length is never hard-coded (the model
embeds step ids up to 16), so shapes and the training loop look perfectly normal; the model simply learns to copy
the last step. Training and validation loss both fall nicely (the validation rows carry their own labels in the same way),
so nothing looks wrong until the model is deployed on records without a progression score.

Measured (standardised target, 15 epochs): val MSE 0.002 with the bug vs 0.43 for the fixed version
(scaler fitted on and applied to `records[:, :-1]`)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout29"


class DiabetesSequenceDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        data = load_diabetes()
        records = np.column_stack([data.data, data.target])
        strata = np.digitize(data.target, np.quantile(data.target, [0.25, 0.5, 0.75]))
        train_rec, val_rec = train_test_split(records, test_size=0.2, random_state=29, stratify=strata)
        x_scaler, y_scaler = StandardScaler(), StandardScaler()
        X_tr = x_scaler.fit_transform(train_rec)
        X_va = x_scaler.transform(val_rec)
        y_tr = y_scaler.fit_transform(train_rec[:, -1:])
        y_va = y_scaler.transform(val_rec[:, -1:])
        self.n_steps = X_tr.shape[1]
        self.train_ds = TensorDataset(torch.tensor(X_tr, dtype=torch.float32).unsqueeze(-1),
                                      torch.tensor(y_tr, dtype=torch.float32))
        self.val_ds = TensorDataset(torch.tensor(X_va, dtype=torch.float32).unsqueeze(-1),
                                    torch.tensor(y_va, dtype=torch.float32))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=128)


class MeasurementGRU(L.LightningModule):
    def __init__(self, max_steps=16, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.step_embed = nn.Embedding(max_steps, 8)
        self.value_proj = nn.Linear(1, 8)
        self.gru = nn.GRU(16, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x):
        steps = torch.arange(x.size(1), device=x.device).expand(x.size(0), -1)
        h = torch.cat([self.value_proj(x), self.step_embed(steps)], dim=-1)
        _, h_n = self.gru(h)
        return self.head(h_n[-1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(29)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MeasurementGRU(), datamodule=DiabetesSequenceDataModule())
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
