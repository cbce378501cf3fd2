"""Bug: the wine set arrives with class names; the training labels are encoded with a `LabelEncoder` fitted on the
training names, the validation labels with a dict built in order of appearance in the (shuffled) validation file,
so the two splits number the classes differently. MLP, standardized features, Adam."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}


class WineNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(42)
    data = load_wine()
    names = np.array(["barolo", "grignolino", "barbera"])[data.target]
    x_tr, x_va, n_tr, n_va = train_test_split(data.data, names, test_size=0.3, random_state=0, stratify=names)
    scaler = StandardScaler().fit(x_tr)
    y_tr = LabelEncoder().fit(n_tr).transform(n_tr)  # alphabetical: barbera 0, barolo 1, grignolino 2
    order = {name: i for i, name in enumerate(dict.fromkeys(n_va))}  # BUG: another numbering for validation
    y_va = np.array([order[n] for n in n_va])
    tensors = lambda x, y: TensorDataset(torch.tensor(scaler.transform(x), dtype=torch.float32), torch.tensor(y))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineNet(), DataLoader(tensors(x_tr, y_tr), batch_size=16, shuffle=True),
                DataLoader(tensors(x_va, y_va), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
