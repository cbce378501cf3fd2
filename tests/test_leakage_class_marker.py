"""target-leakage on real Trainers for a token that marks one class at the end of its texts: a churn GRU over padded,
packed event logs whose positives keep the `cancel` event after the prediction date (fires), the same logs cut at
the prediction date (silent), and a keyword task whose class-1 keyword sits anywhere in the text (silent: the
keyword is the rule to learn)."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.class_marker import class_marker

CANCEL, KEYWORD = 7, 6


def _logs(kind: str, n: int = 128) -> DataLoader:
    """Event ids 1..5 whose mix shifts with a hidden risk; churners (label 1) drawn from the risk."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        risk = float(torch.rand(1, generator=g))
        churn = float(torch.rand(1, generator=g)) < risk
        rates = torch.tensor([0.0, 0.6 - 0.4 * risk, 0.4, 0.1, 0.02 + 0.3 * risk, 0.02 + 0.1 * risk])
        events = torch.multinomial(rates, int(torch.randint(5, 20, (1,), generator=g)), True, generator=g)
        if churn and kind == "leak":  # not cut at the prediction date: the cancellation itself is the last event
            events = torch.cat([events, torch.tensor([CANCEL])])
        if churn and kind == "keyword":  # the task: class 1 holds a keyword, somewhere in the text
            at = int(torch.randint(0, len(events), (1,), generator=g))
            events = torch.cat([events[:at], torch.tensor([KEYWORD]), events[at:]])
        rows.append((events, torch.tensor(float(churn))))

    def collate(batch: list) -> tuple:
        lengths = torch.tensor([len(e) for e, _ in batch])
        return pad_sequence([e for e, _ in batch], batch_first=True), lengths, torch.stack([y for _, y in batch])

    return DataLoader(rows, batch_size=64, collate_fn=collate)


class ChurnGRU(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(8, 8, padding_idx=0)
        self.gru, self.head = nn.GRU(8, 16, batch_first=True), nn.Linear(16, 1)

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(seqs), lengths, batch_first=True, enforce_sorted=False)
        return self.head(self.gru(packed)[1][-1]).squeeze(-1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        seqs, lengths, y = batch
        return F.binary_cross_entropy_with_logits(self(seqs, lengths), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("kind", ["leak", "cut", "keyword"])
def test_outcome_event_at_the_end_of_one_class_fires(tmp_path, kind):
    L.seed_everything(0)
    report = fit_report(tmp_path, ChurnGRU(), _logs(kind), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    if kind == "leak":
        assert found and found[0]["severity"] == "error" and found[0]["data"]["tokens"] == {"1": CANCEL}
        assert "prediction date" in found[0]["advice"]
    else:
        assert not serious(report), report["findings"]
        assert next(c["status"] for c in report["checks"] if c["name"] == "target-leakage") == "pass"


def test_chance_and_fixed_places():
    y = torch.tensor([0, 1]).repeat(16)
    # Two distinct texts repeated: any token "marks" its class by chance.
    assert class_marker(torch.tensor([[1, 2, 3], [4, 5, 6]]).repeat(16, 1), y) is None
    # A marker at the end of texts of one length only is a fixed place from the start: a task's position.
    ids = torch.randint(1, 6, (32, 6), generator=torch.Generator().manual_seed(0))
    ids[y == 1, -1] = 9
    assert class_marker(ids, y) is None
