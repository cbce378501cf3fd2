"""Healthy: a digits MLP validated four times per epoch (val_check_interval=0.25) with a limited number of
validation batches, RMSprop, CSVLogger instead of TensorBoard."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 100)
        self.out = nn.Linear(100, 10)

    def forward(self, x):
        return self.out(F.elu(self.hidden(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.RMSprop(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(3)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=3, val_check_interval=0.25, limit_val_batches=2, accelerator="cpu",
                        logger=CSVLogger("logs", name="digits"), enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Classifier(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
