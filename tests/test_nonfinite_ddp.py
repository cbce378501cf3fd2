"""non-finite under DDP (two CPU processes, gloo): one rank goes NaN, every rank stops, rank 0 names that rank."""

import pytest
import torch.distributed
from _models_nonfinite import Injected
from helpers import digits_loaders, read_report, serious, trainer
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")


def test_nan_on_one_rank_stops_every_rank_and_names_it(tmp_path):
    # A fixed version: under ddp_spawn the parent would otherwise pick the next free version after the workers.
    logger = TensorBoardLogger(tmp_path, name="logs", version=0)
    t = trainer(tmp_path, [NonFiniteSentinel(), SanitySummary(print_summary=False)], logger=logger,
                strategy="ddp_spawn", devices=2, max_epochs=2, limit_train_batches=6, limit_val_batches=0)
    t.fit(Injected("log", at=(0, 3), rank=1, record=str(tmp_path)), digits_loaders()[0])

    report = read_report(t.log_dir)
    (finding,) = serious(report, "non-finite")
    assert finding["severity"] == "error" and finding["where"] == "loss"
    assert (finding["epoch"], finding["batch_idx"], finding["global_step"]) == (0, 3, 3)
    assert finding["data"]["rank"] == 1 and finding["data"]["ranks"] == [1] and finding["data"]["world_size"] == 2
    assert "rank 1 of 2" in finding["message"]
    # Both ranks stopped after the bad step (the update of step 3 ran, nothing after it).
    steps = {p.name: int(p.read_text()) for p in tmp_path.glob("rank*.txt")}
    assert steps == {"rank0.txt": 4, "rank1.txt": 4}
    # Rank 1 saw the NaN and wrote the bundle of its own batch.
    bundle = torch.load(tmp_path / "logs" / "version_0" / finding["replay"], weights_only=True)
    assert bundle["rank"] == 1 and bundle["batch_idx"] == 3
