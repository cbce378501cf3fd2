"""Quickstart: train a small classifier on scikit-learn's digits with every check of lightning_sanity on.

    python examples/quickstart.py              # 5 epochs, prints the sanity summary
    python examples/quickstart.py --epochs 1   # quicker

Then open TensorBoard with the command the script prints at the end.
"""

from __future__ import annotations

import argparse
import os
import shlex

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity


class DigitsClassifier(L.LightningModule):
    def __init__(self, lr: float = 3e-3) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def digits_loaders(batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # pixels are 0..16: scale to [0, 1]
    y = torch.tensor(digits.target)
    split = int(0.8 * len(x))
    train = DataLoader(TensorDataset(x[:split], y[:split]), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[split:], y[split:]), batch_size=batch_size)
    return train, val


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--root", default="lightning_logs_demo", help="where the run's logs go")
    args = parser.parse_args(argv)

    L.seed_everything(42, workers=True)
    train, val = digits_loaders()
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        default_root_dir=args.root,
        callbacks=lightning_sanity.default_callbacks(),
        enable_checkpointing=False,
        log_every_n_steps=5,
    )
    trainer.fit(DigitsClassifier(), train, val)
    log_dir = trainer.log_dir
    print(f"\nOpen the dashboards with:\n  tensorboard --logdir {shlex.quote(os.path.abspath(log_dir))}")
    return log_dir


if __name__ == "__main__":
    main()
