"""Healthy: multi-label classification on digits: four binary attributes per image (even, at least 5, prime,
has a closed loop) predicted with BCEWithLogitsLoss on a 4-logit head."""

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


def attributes(d):
    return torch.stack([d % 2 == 0, d >= 5, (d == 2) | (d == 3) | (d == 5) | (d == 7),
                        (d == 0) | (d == 6) | (d == 8) | (d == 9) | (d == 4)], dim=1).float()


class AttributeNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(64, 96), nn.GELU(), nn.LayerNorm(96), nn.Linear(96, 48), nn.GELU())
        self.head = nn.Linear(48, 4)
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, targets = batch
        loss = self.loss(self(x), targets)
        self.log("train/bce", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, targets = batch
        logits = self(x)
        self.log("val/bce", self.loss(logits, targets))
        self.log("val/hamming_acc", ((logits > 0).float() == targets).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(9)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = attributes(torch.tensor(d.target))
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AttributeNet(), DataLoader(TensorDataset(x[:1440], y[:1440]), batch_size=48, shuffle=True),
                DataLoader(TensorDataset(x[1440:], y[1440:]), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
