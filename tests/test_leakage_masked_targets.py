"""The target the loss compares with, traced through a mask: a marked-event model on ``(marks, gaps, next_marks,
next_gaps, valid)`` batches scores the next gap as ``next_gaps[valid]`` (a copy, not a view). Its second part, the
gaps since the previous event, is an input a causal model reads at each position, not a target fed unshifted."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


class EventGRU(L.LightningModule):
    """Predicts the next mark and the next log gap; with ``read_next_gaps`` the step also feeds it the next gaps
    (the answer of the gap head at every position)."""

    def __init__(self, read_next_gaps: bool = False) -> None:
        super().__init__()
        self.read_next_gaps = read_next_gaps
        self.embed, self.gap, self.next_gap = nn.Embedding(7, 16), nn.Linear(1, 16), nn.Linear(1, 16)
        self.gru, self.marks, self.time = nn.GRU(16, 16, batch_first=True), nn.Linear(16, 6), nn.Linear(16, 1)

    def forward(self, marks, gaps, next_gaps=None):
        h = self.embed(marks) + self.gap(gaps[..., None])
        if next_gaps is not None:
            h = h + self.next_gap(next_gaps[..., None])
        h = self.gru(h)[0]
        return self.marks(h), self.time(h)[..., 0]

    def training_step(self, batch, batch_idx):
        marks, gaps, next_marks, next_gaps, valid = batch
        logits, mu = self(marks, gaps, next_gaps) if self.read_next_gaps else self(marks, gaps)
        ce = F.cross_entropy(logits.reshape(-1, 6), next_marks.reshape(-1), ignore_index=-100)
        return ce + F.mse_loss(mu[valid], next_gaps[valid])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _events(n: int = 64, length: int = 17) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    marks, log_gaps = torch.randint(0, 6, (n, length), generator=g), torch.randn(n, length, generator=g)
    valid = torch.arange(length - 1)[None] < torch.randint(8, length, (n, 1), generator=g)
    next_marks = marks[:, 1:].masked_fill(~valid, -100)
    inputs = marks[:, :-1].masked_fill(~valid, 6)
    return TensorDataset(inputs, log_gaps[:, :-1] * valid, next_marks, log_gaps[:, 1:].clone(), valid)


@pytest.mark.parametrize("read_next_gaps", [False, True])
def test_masked_copy_of_a_later_part_is_the_target_not_the_second_part(tmp_path, read_next_gaps):
    L.seed_everything(0)
    train = DataLoader(_events(), batch_size=16)
    report = fit_report(tmp_path, EventGRU(read_next_gaps), train,
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=3)
    # The gaps since the previous event (the second part) are read at each position by design; the next gaps are
    # what the loss compares with (through the mask), so feeding them is the leak.
    assert bool(serious(report, "target-leakage")) is read_next_gaps
    assert not serious(report, "causal-leakage")
