"""target-leakage on real Trainers for a frame tagger handed its own labels: an autoregressive tagger whose
previous-label input is cut with the wrong slice (``pad(labels, (1, 0))[:, 1:]`` is ``labels`` itself) fires once
trained; the right slice stays silent, as does a decoder handed ``labels`` that shifts them right itself (HF seq2seq
style), and a tagger handed ``labels`` for a loss it computes inside."""

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

CLASSES, T, FEATURES = 5, 24, 8
BOS = CLASSES


def _frames(n: int = 256) -> DataLoader:
    """Notes held for 3-8 frames; each frame's features carry its note, in noise."""
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(n, T, dtype=torch.long)
    for i in range(n):
        t = 0
        while t < T:
            labels[i, t:t + int(torch.randint(3, 9, (1,), generator=g))] = int(torch.randint(0, CLASSES, (1,), generator=g))
            t += int(torch.randint(3, 9, (1,), generator=g))
    codes = torch.randn(CLASSES, FEATURES, generator=g)
    feats = codes[labels] + 1.5 * torch.randn(n, T, FEATURES, generator=g)
    return DataLoader(TensorDataset(feats, labels), batch_size=32, shuffle=True, generator=g)


class Tagger(L.LightningModule):
    """A GRU over the frames, also fed the previous label (``prev``: "wrong", "right", "inside" or "loss")."""

    def __init__(self, prev: str) -> None:
        super().__init__()
        self.prev = prev
        self.inp, self.emb = nn.Linear(FEATURES, 32), nn.Embedding(CLASSES + 1, 16)
        self.gru, self.head = nn.GRU(48, 32, batch_first=True), nn.Linear(32, CLASSES)

    def forward(self, feats: torch.Tensor, labels: torch.Tensor):
        given = labels
        if self.prev in ("inside", "loss"):  # handed the labels; a decoder shifts them right itself
            given = F.pad(labels, (1, 0), value=BOS)[:, :-1]
        h, _ = self.gru(torch.cat([torch.relu(self.inp(feats)), self.emb(given)], -1))
        logits = self.head(h)
        if self.prev == "loss":
            return logits, F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return logits

    def training_step(self, batch, batch_idx):
        feats, labels = batch
        if self.prev == "wrong":
            given = F.pad(labels, (1, 0), value=BOS)[:, 1:]
        elif self.prev == "right":
            given = F.pad(labels, (1, 0), value=BOS)[:, :-1]
        else:
            given = labels
        out = self(feats, given)
        logits = out[0] if isinstance(out, tuple) else out
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _report(tmp_path, prev: str) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, Tagger(prev), _frames(), [LeakageChecks(), SanitySummary(print_summary=False)],
                      max_epochs=4)


def test_tagger_given_its_own_labels_fires(tmp_path):
    (finding,) = serious(_report(tmp_path, "wrong"), "target-leakage")
    assert finding["severity"] == "error" and finding["data"]["form"] == "index"
    assert finding["data"]["accuracy_new"] > 0.5 and "positions" in finding["message"]


@pytest.mark.parametrize("prev", ["right", "inside", "loss"])
def test_taggers_given_earlier_labels_stay_silent(tmp_path, prev):
    report = _report(tmp_path, prev)
    assert not serious(report, "target-leakage"), serious(report)
