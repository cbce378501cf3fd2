"""update-ratio ``rounds-away``: a Transformer-style classifier under ``precision="bf16-true"`` with AdamW at lr
1e-4 (steps below half an ulp of most bf16 weights) fires; the same model under ``bf16-mixed`` (float32 weights),
and under ``bf16-true`` at lr 1e-2, stays silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary


class _TokenClassifier(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr
        self.embed = nn.Embedding(20, 32)  # N(0, 1) weights: half an ulp in bf16 is about 3e-3
        self.body = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.body(self.embed(x).mean(1)).float(), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


@pytest.mark.parametrize("precision, lr, fires", [("bf16-true", 1e-4, True), ("bf16-mixed", 1e-4, False),
                                                   ("bf16-true", 1e-2, False)])
def test_bf16_true_updates_below_half_an_ulp_fire(tmp_path, precision, lr, fires):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (256, 8), generator=g)
    y = x[:, 0] % 3
    L.seed_everything(0)
    t = trainer(tmp_path, [NormMonitor(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                precision=precision)
    t.fit(_TokenClassifier(lr), DataLoader(TensorDataset(x, y), batch_size=32))
    found = serious(read_report(t.log_dir), "update-ratio")
    if fires:
        assert found and found[0]["data"]["kind"] == "rounds-away" and found[0]["data"]["share"] >= 0.5, found
        assert "bf16-mixed" in found[0]["advice"]
    else:
        assert not found, found


def test_rounds_away_lives_in_the_norm_monitor_and_switches_off_with_update_ratio(tmp_path):
    """One home: the suite has no other update-ratio callback; ``disable=["update-ratio"]`` leaves nothing of it
    running (no low-precision scan, no per-batch lr read), and update-ratio thresholds still tune the NormMonitor."""
    import lightning_sanity
    from lightning_sanity.callbacks.norms import NormMonitor as Home

    callbacks = lightning_sanity.default_callbacks(thresholds={"update-ratio": {"too_small": 1e-8}})
    owners = [c for c in callbacks if "update-ratio" in getattr(c, "checks", ())]
    assert [type(c) for c in owners] == [Home] and owners[0].threshold("update-ratio", "too_small") == 1e-8

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (256, 8), generator=g)
    for disable in ([], ["update-ratio"]):
        L.seed_everything(0)
        callbacks = lightning_sanity.default_callbacks(disable=disable, print_summary=False)
        monitor = next(c for c in callbacks if isinstance(c, Home))
        t = trainer(tmp_path / str(len(disable)), callbacks, logger=None, max_epochs=1, precision="bf16-true")
        t.fit(_TokenClassifier(1e-4), DataLoader(TensorDataset(x, x[:, 0] % 3), batch_size=32))
        report = read_report(t.log_dir)
        found = [f for f in report["findings"] if f["check"] == "update-ratio"]
        status = next(c for c in report["checks"] if c["name"] == "update-ratio")["status"]
        if disable:
            assert not found and status == "skipped" and not monitor._rounding.watching, found
        else:  # the whole suite finds it in the one home
            assert any(f["data"].get("kind") == "rounds-away" for f in found) and monitor._rounding.watching, found
