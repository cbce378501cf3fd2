"""Quickstart: train a small classifier on scikit-learn's digits with every check of lightning_sanity on.

    python examples/quickstart.py              # 5 epochs, prints the sanity summary
    python examples/quickstart.py --epochs 1   # quicker
    python examples/quickstart.py --bug flipped-sign   # inject a classic bug and see the finding it gets

Bugs (``--bug``): flipped-sign, softmax-into-cross-entropy, view-instead-of-permute, detached-encoder,
lr-too-high, unnormalized-inputs, batchnorm-bad-batch, eval-mode.

Then open TensorBoard with the command the script prints at the end.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity


BUGS = {
    "flipped-sign": "the loss is returned negated (gradient ascent)",
    "softmax-into-cross-entropy": "probabilities, not logits, are fed to cross_entropy",
    "view-instead-of-permute": "a view scrambles samples across the batch",
    "detached-encoder": "the first layer's output is detached: it never learns",
    "lr-too-high": "Adam with lr=1.0, a few hundred times the usual 3e-3",
    "unnormalized-inputs": "raw 0..16 pixels times 16 (0..255 scale)",
    "batchnorm-bad-batch": "one batch arrives scaled x1000",
    "eval-mode": "the model is put in eval mode at each epoch start",
}


class DigitsClassifier(L.LightningModule):
    def __init__(self, lr: float = 3e-3, bug: str | None = None) -> None:
        super().__init__()
        self.bug = bug
        self.lr = 1.0 if bug == "lr-too-high" else lr
        self.net = nn.Sequential(
            nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bug == "view-instead-of-permute":
            # Rows of 8 pixels, meant as x.view(B, 8, 8); viewing as (8, B, 8) and transposing mixes the samples.
            x = x.view(8, x.shape[0], 8).transpose(0, 1).reshape(x.shape[0], 64)
        if self.bug == "detached-encoder":
            return self.net[1:](self.net[0](x).detach())
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        if self.bug == "eval-mode":
            self.eval()

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.bug == "batchnorm-bad-batch" and self.current_epoch == 1 and batch_idx == 5:
            x = x * 1000.0
        logits = self(x)
        if self.bug == "softmax-into-cross-entropy":
            logits = logits.softmax(-1)
        loss = nn.functional.cross_entropy(logits, y)
        if self.bug == "flipped-sign":
            loss = -loss
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def digits_loaders(batch_size: int = 64, normalize: bool = True) -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    # Pixels are 0..16: scale them to [0, 1] (the unnormalized bug blows them up to 0..255 instead).
    x = x / 16.0 if normalize else x * 16.0
    y = torch.tensor(digits.target)
    split = int(0.8 * len(x))
    train = DataLoader(TensorDataset(x[:split], y[:split]), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[split:], y[split:]), batch_size=batch_size)
    return train, val


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--root", default="lightning_logs_demo", help="where the runs' logs go (one folder per run)")
    parser.add_argument("--bug", choices=sorted(BUGS), help="inject one classic bug")
    args = parser.parse_args(argv)
    if args.bug:
        print(f"Injected bug: {args.bug}: {BUGS[args.bug]}")

    L.seed_everything(42, workers=True)
    train, val = digits_loaders(normalize=args.bug != "unnormalized-inputs")
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        default_root_dir=args.root,
        # Runs named after the bug ("healthy" without one), so TensorBoard on --root lists them side by side.
        logger=TensorBoardLogger(args.root, name=args.bug or "healthy"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_checkpointing=False,
        log_every_n_steps=5,
        enable_progress_bar=False,
    )
    trainer.fit(DigitsClassifier(bug=args.bug), train, val)
    log_dir = trainer.log_dir
    print(f"\nOpen the dashboards (paste into any shell, then browse to http://localhost:6006):\n"
          f"  {tensorboard_command(args.root)}\nor, from the project folder: make tensorboard")
    return log_dir


def tensorboard_command(logdir: str) -> str:
    """A TensorBoard command that works in a fresh shell: this interpreter's own ``tensorboard``, absolute paths."""
    # Not resolved: .venv/bin/python is a symlink, and the venv's scripts sit beside the link, not its target.
    script = Path(sys.executable).parent / "tensorboard"
    program = shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m tensorboard.main"
    return f"{program} --logdir {shlex.quote(str(Path(logdir).resolve()))}"


if __name__ == "__main__":
    main()
