"""Replaying a NaN: a run that goes non-finite at a known step, its finding, and the replay of its bundle.

    python examples/replay_nan.py                 # about ten seconds on a laptop CPU
    python examples/replay_nan.py --root /tmp/x   # where the run's logs go

The model takes the log of its ReLU features, with an epsilon that is annealed over training. The schedule has
a bug: the epsilon reaches exactly 0 at global step 50 (epoch 2, batch 4: 23 batches per epoch), and
log(0) = -inf turns the loss into NaN there. The non-finite check stops the run at that step and saves it; the
replay names the layer and the op; a seeded re-run fast-forwarded to that epoch and batch gets the same batch.
"""

from __future__ import annotations

import argparse
import os

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity
from lightning_sanity.replays import FastForward, load_bundle


class LogFeatures(nn.Module):
    """``log(relu(x) + eps)``: log-compressed features, finite only while ``eps > 0``."""

    def __init__(self) -> None:
        super().__init__()
        self.eps = 1e-3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(F.relu(x) + self.eps)


class DigitsClassifier(L.LightningModule):
    def __init__(self, anneal_steps: int = 50) -> None:
        super().__init__()
        self.anneal_steps = anneal_steps
        self.net = nn.Sequential(nn.Linear(64, 64), LogFeatures(), nn.Dropout(0.1), nn.Linear(64, 10))

    def training_step(self, batch, batch_idx):
        # The bug: anneal eps linearly "towards" zero, and reach it. max(..., 1e-6) would have been the fix.
        self.net[1].eps = 1e-3 * max(0.0, 1.0 - self.global_step / self.anneal_steps)
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def digits_loader() -> DataLoader:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    split = int(0.8 * len(x))
    return DataLoader(TensorDataset(x[:split], y[:split]), batch_size=64, shuffle=True)


def fit(root: str, callbacks: list) -> L.Trainer:
    L.seed_everything(42, workers=True)  # the seed makes the step replayable and the run fast-forwardable
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, default_root_dir=root, callbacks=callbacks,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        log_every_n_steps=10)
    trainer.fit(DigitsClassifier(), digits_loader())
    return trainer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="lightning_logs_replay_nan", help="where the run's logs go")
    args = parser.parse_args(argv)

    trainer = fit(args.root, lightning_sanity.default_callbacks(print_summary=False))
    report = lightning_sanity.load_report(trainer.log_dir)
    finding = next(f for f in report["findings"] if f["check"] == "non-finite")
    print("\n== The finding (from sanity/summary.json)")
    for field in ("severity", "message", "epoch", "batch_idx", "global_step", "seed", "where", "replay"):
        print(f"{field:>12}: {finding[field]}")
    print(f"{'stopped at':>12}: global step {trainer.global_step}")

    bundle_path = os.path.join(trainer.log_dir, finding["replay"])
    print(f"\n== Replaying {finding['replay']} on a fresh DigitsClassifier()")
    result = lightning_sanity.replay(bundle_path, DigitsClassifier())
    print(result)

    print(f"\n== Fast-forwarding a seeded re-run to epoch {finding['epoch']}, batch {finding['batch_idx']}")
    forward = FastForward(finding["epoch"], finding["batch_idx"])
    fit(os.path.join(args.root, "fast_forward"), [forward])
    bundle = load_bundle(bundle_path)
    same = all(torch.equal(a, b) for a, b in zip(forward.batch, bundle["batch"]))
    print(f"same batch as in the bundle: {same}; labels of its first 10 samples: {forward.batch[1][:10].tolist()}")


if __name__ == "__main__":
    main()
