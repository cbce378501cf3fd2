"""Bug: discriminative learning rates where the body's factor was typed 0 instead of 0.1
(`lr * 0`): the body's parameter group has lr 0 for the whole run although its parameters are trainable, so
only the head learns. Digits MLP, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule", "update-ratio"}


def digits_loaders():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    tr, va = perm[:1400], perm[1400:]
    return (DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True),
            DataLoader(TensorDataset(x[va], y[va]), batch_size=256))


class MLP(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        body_factor = 0  # meant 0.1
        return torch.optim.Adam([
            {"params": self.body.parameters(), "lr": self.hparams.lr * body_factor},
            {"params": self.head.parameters()},
        ], lr=self.hparams.lr)


def main():
    L.seed_everything(0)
    train, val = digits_loaders()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MLP(), train, val)
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
