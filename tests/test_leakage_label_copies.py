"""target-leakage on real Trainers for another batch tensor that holds the label: an HF-style NER tagger whose collate
fills `pos_ids` from the NER tags (vs the real part-of-speech tags, correlated with the tags but no function of
them), and a tabular classifier fed a "group" column that is the class offset by ten (vs a per-sample loss weight from
class weights, a function of the label that the model never reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.label_copies import label_copies

TRIGGERS = (2, 3, 4, 5)


def _sentences(copy_tags: bool, n: int = 64, length: int = 12) -> DataLoader:
    """A token after a trigger word is an entity (1), a number word (>= 50) is a number (2), the rest is O (0); the
    part-of-speech tag is one function of the token (a deterministic tagger). Position 0 is [CLS], labelled -100."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 60, (n, length), generator=g)
    ids[:, 0] = 1
    previous = torch.cat([torch.zeros_like(ids[:, :1]), ids[:, :-1]], 1)
    tags = torch.where(ids >= 50, 2, torch.isin(previous, torch.tensor(TRIGGERS)).long())
    tags[:, 0] = -100
    pos = torch.where(torch.isin(ids, torch.tensor(TRIGGERS)), 1, torch.where(ids >= 50, 2, 3 + ids % 2))
    pos[:, 0] = 0
    feature = torch.where(tags >= 0, tags, 0) if copy_tags else pos
    rows = [{"input_ids": ids[i], "attention_mask": torch.ones(length, dtype=torch.long), "pos_ids": feature[i],
             "labels": tags[i]} for i in range(n)]
    return DataLoader(rows, batch_size=32)


@dataclass
class Output:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


class Tagger(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.words, self.pos = nn.Embedding(60, 16), nn.Embedding(5, 16)
        self.rnn, self.head = nn.GRU(16, 16, batch_first=True, bidirectional=True), nn.Linear(32, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pos_ids: torch.Tensor,
                labels: Optional[torch.Tensor] = None) -> Output:
        logits = self.head(self.rnn(self.words(input_ids) + self.pos(pos_ids))[0])
        loss = None if labels is None else F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1))
        return Output(logits, loss)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(**batch).loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _fit(tmp_path: Any, model: L.LightningModule, data: DataLoader) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, model, data, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None,
                      max_steps=2)


@pytest.mark.parametrize("leak", [True, False])
def test_token_feature_filled_from_the_tags_fires_real_pos_tags_are_silent(tmp_path, leak):
    report = _fit(tmp_path, Tagger(), _sentences(leak))
    found = serious(report, "target-leakage")
    if leak:
        assert found and found[0]["severity"] == "error" and found[0]["where"] == "batch['pos_ids']", report["findings"]
        assert found[0]["data"]["how"] == "equal" and found[0]["data"]["log10_chance"] < -30
        assert "pos_ids" in found[0]["advice"]
    else:
        assert not serious(report), report["findings"]
        status = {c["name"]: c for c in report["checks"]}["target-leakage"]
        assert status["status"] == "pass" and "no other tensor of the batch holds the label" in status["detail"]


class GroupClassifier(L.LightningModule):
    """Digits with a third batch part: a "group" column fed to the model (``feed=True``) or a per-sample loss weight
    used in the loss only."""

    def __init__(self, feed: bool) -> None:
        super().__init__()
        self.feed = feed
        self.groups, self.net = nn.Embedding(20, 8), nn.Linear(64, 8)
        self.head = nn.Linear(8, 10)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, extra = batch
        if self.feed:
            return F.cross_entropy(self.head(self.net(x) + self.groups(extra)), y)
        return (F.cross_entropy(self.head(self.net(x)), y, reduction="none") * extra).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("feed", [True, False])
def test_tuple_part_read_by_the_model_fires_loss_weight_is_silent(tmp_path, feed):
    x, y = digits(256)
    extra = y + 10 if feed else torch.linspace(0.5, 1.4, 10)[y]  # a relabelling either way
    report = _fit(tmp_path, GroupClassifier(feed), DataLoader(TensorDataset(x, y, extra), batch_size=64))
    found = serious(report, "target-leakage")
    if feed:
        assert found and found[0]["where"] == "batch[2]" and found[0]["data"]["how"] == "relabelled", report["findings"]
    else:
        assert not serious(report), report["findings"]
        status = {c["name"]: c for c in report["checks"]}["target-leakage"]
        assert "no module of the model was given it" in status["detail"]


def test_label_copies_chance_and_shapes():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (16, 10), generator=g)
    # Two distinct samples repeated: any relabelling "matches" by chance.
    few = y[:2].repeat(8, 1)
    assert label_copies(few[:, :1].reshape(16), {"copy": few[:, :1].reshape(16) + 1}) == []
    # A trailing feature dimension: each feature is a column; the one holding the tags is named.
    noise = torch.randn(16, 10, 3, generator=g)
    noise[..., 1] = y.float() * 2
    found = label_copies(y, {"features": noise})
    assert [(c.name, c.column, c.how) for c in found] == [("features", 1, "relabelled")]
    # A value that is one function of the input token is the input's information, not the label's.
    ids = y * 7 + 1
    assert label_copies(y, {"shape": ids % 7 + y}, ids) == []
    # A regression target has no classes to match.
    assert label_copies(torch.randn(16, 10, generator=g), {"copy": torch.randn(16, 10, generator=g)}) == []
