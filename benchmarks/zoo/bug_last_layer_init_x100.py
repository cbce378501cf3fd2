"""Bug: a custom init that multiplies the output layer's weights by 100 (meant to divide): initial logits are
huge, the initial cross-entropy is far above ln(10) and training starts by undoing the damage. Digits MLP."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"initial-loss"}


class MLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.out = nn.Linear(64, 10)
        with torch.no_grad():
            self.out.weight.mul_(100.0)  # BUG: meant a small (x 0.01) last-layer init

    def forward(self, x):
        return self.out(self.hidden(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(42)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MLP(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
