"""Healthy: a debugging run that deliberately overfits 40 digit images for 60 epochs (the classic "can the model
memorise a tiny set" sanity run); training loss goes to nearly zero, validation loss rises. Overfitting is not a bug."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class Memoriser(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

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
    L.seed_everything(40)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=60, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Memoriser(), DataLoader(TensorDataset(x[:40], y[:40]), batch_size=8, shuffle=True),
                DataLoader(TensorDataset(x[1000:1200], y[1000:1200]), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
