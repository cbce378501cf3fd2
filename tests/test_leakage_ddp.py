"""The four new checks under DDP (two CPU processes, gloo): rank 0 reports a leak once, split-overlap says why it
does not run, and nothing crashes."""

import pytest
import torch.distributed
from _models_leakage import DemoTransformerLM, random_tokens, shifted_loader
from helpers import read_report, serious, trainer
from lightning.pytorch.loggers import TensorBoardLogger

import lightning_sanity

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")


def test_leaks_reported_once_under_ddp(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="logs", version=0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=logger,
                strategy="ddp_spawn", devices=2, max_epochs=1, limit_train_batches=4, limit_val_batches=2)
    t.fit(DemoTransformerLM(), shifted_loader(random_tokens(64, 0), shuffle=False),
          shifted_loader(random_tokens(32, 1), shuffle=False))
    report = read_report(t.log_dir)
    assert len(serious(report, "causal-leakage")) == 1 and len(serious(report, "target-leakage")) == 1
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["split-overlap"]["status"] == "skipped" and "DDP" in checks["split-overlap"]["detail"]
    assert checks["val-divergence"]["status"] in ("pass", "skipped")


def test_first_epoch_and_validation_looks_under_ddp(tmp_path):
    """A class-interval column followed over each rank's first epoch, and teacher forcing kept in validation (looked
    at on rank 0, at each validation run until found): each reported once."""
    from test_leakage_label_blocks import _Bearing, _bearings
    from test_leakage_val_label_argument import Hierarchical, _loaders

    logger = TensorBoardLogger(tmp_path / "blocks", name="logs", version=0)
    t = trainer(tmp_path / "blocks", lightning_sanity.default_callbacks(print_summary=False), logger=logger,
                strategy="ddp_spawn", devices=2, max_epochs=1)
    t.fit(_Bearing(), _bearings("path"))
    found = serious(read_report(t.log_dir), "target-leakage")
    assert len(found) == 1 and found[0]["data"]["how"] == "blocks"
    logger = TensorBoardLogger(tmp_path / "forcing", name="logs", version=0)
    t = trainer(tmp_path / "forcing", lightning_sanity.default_callbacks(print_summary=False), logger=logger,
                strategy="ddp_spawn", devices=2, max_epochs=3)
    t.fit(Hierarchical(val_gold=True), *_loaders())
    report = read_report(t.log_dir)
    found = serious(report, "target-leakage")
    assert len(found) == 1 and found[0]["data"]["label"] == "group", {c["name"]: c for c in report["checks"]}[
        "target-leakage"]
