"""target-leakage on a real Trainer for next-event prediction over variable-length event logs (a GRU over activity ids
beside numeric event features, padded dict batches, the last target an end marker): a "case progress" feature
``(t + 1) / len(case)`` fixes each case's length and fires; ``log1p(t)``, known while the case runs, stays silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary

END = 5


def _cases(progress: bool, n: int = 128) -> list[dict]:
    """Cases of 2 to 7 activities (ids 1-4) and an END target; numeric features: the wait, then a position feature."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        k = int(torch.randint(2, 8, (1,), generator=g))
        acts = torch.randint(1, 5, (k,), generator=g)
        t = torch.arange(k).float()
        position = (t + 1) / (k + 1) if progress else torch.log1p(t)
        numeric = torch.stack([torch.rand(k, generator=g), position], -1)
        rows.append({"activity": acts, "numeric": numeric, "labels": torch.cat([acts[1:], torch.tensor([END])])})
    return rows


def _collate(rows: list[dict]) -> dict:
    t = max(len(r["activity"]) for r in rows)
    out = {"activity": torch.zeros(len(rows), t, dtype=torch.long), "numeric": torch.zeros(len(rows), t, 2),
           "labels": torch.full((len(rows), t), -100)}
    for i, r in enumerate(rows):
        for key in out:
            out[key][i, : len(r["activity"])] = r[key]
    return out


class NextEvent(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.num = nn.Embedding(6, 16), nn.Linear(2, 16)
        self.gru, self.head = nn.GRU(16, 32, batch_first=True), nn.Linear(32, 6)

    def forward(self, activity: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(self.emb(activity) + self.num(numeric))[0])

    def training_step(self, batch, batch_idx):
        logits = self(batch["activity"], batch["numeric"])
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("progress", [True, False])
def test_case_progress_feature_fires_position_alone_is_silent(tmp_path, progress):
    L.seed_everything(0)
    loader = DataLoader(_cases(progress), batch_size=32, shuffle=True, collate_fn=_collate)
    report = fit_report(tmp_path, NextEvent(), loader, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=3)
    found = serious(report, "target-leakage")
    assert bool(found) is progress, [f["message"] for f in found]
    if found:
        assert found[0]["data"]["feature"] == "numeric" and found[0]["data"]["channel"] == 1
        assert "batch['numeric'][..., 1]" == found[0]["where"]
