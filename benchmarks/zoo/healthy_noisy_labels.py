"""Healthy code on realistically noisy data: 25 % of the digits training labels replaced by random classes
(annotation noise); the model still learns, the training loss plateaus well above zero. Adam, MLP."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class MLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(41)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    noisy = torch.rand(1500, generator=g) < 0.25
    ytr = torch.where(noisy, torch.randint(0, 10, (1500,), generator=g), y[:1500])
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MLP(), DataLoader(TensorDataset(x[:1500], ytr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
