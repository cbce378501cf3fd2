"""DDP with two CPU processes (gloo): rank 0 writes one complete summary, with what the other rank saw."""

import pytest
import torch.distributed
from lightning.pytorch.loggers import TensorBoardLogger
from helpers import Classifier, ProbeCheck, digits_loaders, read_report, serious, trainer

from lightning_sanity import SanitySummary

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")


def test_ddp_two_processes_one_complete_summary(tmp_path):
    # A fixed version: under ddp_spawn the parent would otherwise pick the next free version after the workers.
    logger = TensorBoardLogger(tmp_path, name="logs", version=0)
    t = trainer(tmp_path, [ProbeCheck.make(only_rank=1), SanitySummary(print_summary=False)], logger=logger,
                strategy="ddp_spawn", devices=2, max_epochs=1, limit_train_batches=4, limit_val_batches=2)
    t.fit(Classifier(), *digits_loaders())
    report = read_report(t.log_dir)
    (finding,) = serious(report, "loss-trend")
    assert finding["message"] == "probe finding on rank 1" and finding["data"]["rank"] == 1
    summaries = list(tmp_path.rglob("summary.json"))
    assert len(summaries) == 1
