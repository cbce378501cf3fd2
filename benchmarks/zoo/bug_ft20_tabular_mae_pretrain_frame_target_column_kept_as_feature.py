"""Bug: self-supervised tabular pretraining then fine-tuning on sklearn's breast_cancer. Stage 1 pretrains an MLP
encoder as a masked autoencoder (30 % of the standardized columns replaced by a learned mask token, MSE on the
masked columns only); stage 2 fine-tunes the encoder (lower lr) plus a new linear head on the diagnosis, with a
validation split.

The rows are kept as one named table (`columns = feature_names + ["target"]`, data and target stacked side by side, as
the shared tabular loader of the project does), and the feature columns are chosen as "every column except the
label", with the label name written as LABEL = "diagnosis" (the name in the Kaggle CSV the pipeline was first
written for). In this table the label column is called "target", so it stays in the feature matrix: it is
standardized with the rest, the MAE learns to reconstruct it, and the fine-tuned classifier simply reads it.
Nothing crashes; the run just looks too good. Symptom: val loss 0.019 / val acc 1.000 vs 0.115 / 0.937 with the
label column dropped (LABEL = "target")."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout20"
LABEL = "diagnosis"


class Encoder(nn.Module):
    def __init__(self, d_in, d=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d), nn.GELU(), nn.LayerNorm(d), nn.Linear(d, d), nn.GELU())

    def forward(self, x):
        return self.net(x)


class TabularMAE(L.LightningModule):
    def __init__(self, d_in, mask_ratio=0.3, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder(d_in)
        self.mask_token = nn.Parameter(torch.zeros(d_in))
        self.decoder = nn.Linear(64, d_in)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        mask = torch.rand_like(x) < self.hparams.mask_ratio
        x_in = torch.where(mask, self.mask_token.expand_as(x), x)
        recon = self.decoder(self.encoder(x_in))
        loss = F.mse_loss(recon[mask], x[mask])
        self.log("mae_loss", loss, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


class FineTuner(L.LightningModule):
    def __init__(self, encoder, lr_head=3e-3, lr_body=3e-4):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW([
            {"params": self.encoder.parameters(), "lr": self.hparams.lr_body},
            {"params": self.head.parameters(), "lr": self.hparams.lr_head},
        ], weight_decay=1e-4)


def main():
    L.seed_everything(2031)
    data = load_breast_cancer()
    columns = list(data.feature_names) + ["target"]
    table = np.column_stack([data.data, data.target]).astype("float32")
    feature_cols = [i for i, c in enumerate(columns) if c != LABEL]
    X = table[:, feature_cols]
    y = table[:, columns.index("target")].astype("int64")
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    X_tr = torch.tensor(scaler.transform(X_tr), dtype=torch.float32)
    X_va = torch.tensor(scaler.transform(X_va), dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)

    mae = TabularMAE(X_tr.shape[1])
    pre = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                    enable_model_summary=False, logger=False, enable_checkpointing=False)
    pre.fit(mae, DataLoader(TensorDataset(X_tr), batch_size=32, shuffle=True))

    model = FineTuner(mae.encoder)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(X_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X_va, y_va), batch_size=128))
    m = trainer.callback_metrics
    print(f"SYMPTOM n_features={X_tr.shape[1]} val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
