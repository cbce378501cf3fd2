"""Healthy: breast cancer MLP with EarlyStopping(monitor="val_loss", patience=3) and ModelCheckpoint on the
best validation loss; max_epochs is generous, the run stops when validation stops improving."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(2024)
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.3, random_state=0)
    sc = StandardScaler().fit(Xtr)
    tr = TensorDataset(torch.tensor(sc.transform(Xtr), dtype=torch.float32), torch.tensor(ytr))
    va = TensorDataset(torch.tensor(sc.transform(Xva), dtype=torch.float32), torch.tensor(yva))
    callbacks = [EarlyStopping(monitor="val_loss", patience=3, mode="min"),
                 ModelCheckpoint(monitor="val_loss", mode="min"), *lightning_sanity.default_callbacks()]
    trainer = L.Trainer(max_epochs=100, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=callbacks)
    trainer.fit(Net(), DataLoader(tr, batch_size=32, shuffle=True), DataLoader(va, batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
