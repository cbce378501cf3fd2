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
