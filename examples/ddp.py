"""The suite under DDP on two CPU processes: every check runs on every rank, rank 0 writes one summary.

    python examples/ddp.py               # 2 processes (gloo), 2 epochs on scikit-learn's digits
    python examples/ddp.py --bug nan-on-rank-1   # one rank goes NaN: every rank stops, the finding names it

Lightning's own `strategy="ddp"` does the scale-out: this script re-launches itself once per extra process.
"""

from __future__ import annotations

import argparse
import os
import sys

import lightning as L
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quickstart import DigitsClassifier, digits_loaders  # noqa: E402

import lightning_sanity  # noqa: E402


class MaybeNaN(DigitsClassifier):
    """Rank 1's loss turns NaN at global step 10 when asked to."""

    def __init__(self, nan_on_rank_1: bool = False) -> None:
        super().__init__()
        self.nan_on_rank_1 = nan_on_rank_1

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.nan_on_rank_1 and self.global_rank == 1 and self.global_step == 10:
            loss = loss * torch.tensor(float("nan"))
        return loss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--root", default="lightning_logs_ddp")
    parser.add_argument("--bug", choices=["nan-on-rank-1"])
    args = parser.parse_args(argv)

    L.seed_everything(42, workers=True)
    train, val = digits_loaders()
    trainer = L.Trainer(
        strategy="ddp", accelerator="cpu", devices=2, max_epochs=args.epochs, default_root_dir=args.root,
        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=5,
    )
    trainer.fit(MaybeNaN(nan_on_rank_1=args.bug == "nan-on-rank-1"), train, val)
    log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
    if trainer.is_global_zero:
        report = lightning_sanity.load_report(log_dir)
        print(f"rank 0 wrote {os.path.join(log_dir, 'sanity', 'summary.json')}: status {report['status']}")
    # Close the gloo group ourselves: one left to interpreter shutdown can abort the process at exit.
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
