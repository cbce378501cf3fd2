"""Bug: a binary "is it cultivar 3?" task on wine built as `y == 3`, but sklearn numbers the cultivars 0, 1, 2:
every label is 0 and the model learns to always say no. BCEWithLogits, Adam."""

import lightning as L
import torch
from sklearn.datasets import load_wine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"label-distribution"}


class Detector(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(13, 16), nn.ReLU(), nn.Linear(16, 1))
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main():
    L.seed_everything(0)
    X, target = load_wine(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    y = torch.tensor(target == 3, dtype=torch.float32)  # BUG: classes are 0, 1, 2
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:140], perm[140:]
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Detector(), DataLoader(TensorDataset(X[tr], y[tr]), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(X[va], y[va]), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
