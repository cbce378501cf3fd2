"""On a GPU: the whole default suite adds at most one host-device sync per non-logging step (the fused
finiteness flag). Runs only where CUDA is available."""

import warnings

import lightning as L
import pytest
import torch
from helpers import Classifier, fit
from torch import nn

import lightning_sanity

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

LOG_EVERY = 10
EPOCHS = 10


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10),
    )


class _SyncWindow(L.Callback):
    """Opens a sync-counting window at batch start (placed first) or closes it at batch end (placed last).

    Batches are keyed by the optimizer steps done before them (``global_step`` at batch start), so that the
    logging batches are those whose key + 1 is a multiple of ``log_every_n_steps`` in every epoch."""

    def __init__(self, records: list, per_batch: dict, opens: bool, keys: list) -> None:
        self.records, self.per_batch, self.opens, self.keys = records, per_batch, opens, keys

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.opens:
            torch.cuda.synchronize()
            self.keys.append(trainer.global_step)
            self.per_batch[trainer.global_step] = len(self.records)
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self.opens:
            torch.cuda.set_sync_debug_mode("default")
            key = self.keys[-1]
            self.per_batch[key] = len(self.records) - self.per_batch[key]


def _syncs_per_batch(tmp_path, callbacks) -> dict[int, int]:
    L.seed_everything(0)
    per_batch: dict[int, int] = {}
    keys: list[int] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        window = [_SyncWindow(records, per_batch, True, keys), *callbacks, _SyncWindow(records, per_batch, False, keys)]
        # 10 epochs of 23 batches: ~230 planned steps, long enough that the prediction snapshots ride on logging
        # steps (a short run snapshots every few steps instead, syncing off the logging steps on purpose).
        fit(Classifier(net=_cnn()), tmp_path, callbacks=window, accelerator="cuda", max_epochs=EPOCHS,
            log_every_n_steps=LOG_EVERY, limit_val_batches=0)
    torch.cuda.set_sync_debug_mode("default")
    return per_batch


def test_default_suite_adds_at_most_one_sync_per_non_logging_step(tmp_path):
    bare = _syncs_per_batch(tmp_path / "bare", [])
    suite = _syncs_per_batch(tmp_path / "suite", lightning_sanity.default_callbacks(print_summary=False))
    extra = {b: suite[b] - bare[b] for b in bare}
    print("extra syncs per batch:", extra)
    # The fit-start checks look at the first batches once; after them, non-logging steps pay one sync at most.
    steady = {b: n for b, n in extra.items() if b >= 8 and (b + 1) % LOG_EVERY != 0}
    assert steady and max(steady.values()) <= 1, steady
