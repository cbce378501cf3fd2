"""batch-mixing for a model whose ids reach its embeddings in another layout than the batch's: multiple choice with
each sample's candidates collated as a list of ``(B, S)`` tensors, flattened to ``(B * C, S)`` before the embedding.
No gradient can be taken per sample; reordering the samples still shows ``torch.stack(v).view(B, C, S)`` (each
sample scored on other samples' candidates), and ``torch.stack(v, dim=1)`` stays silent. An EmbeddingBag fed a flat
token stream with ``(B,)`` offsets is not reordered (the offsets cannot move alone)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary


class ChoiceScorer(L.LightningModule):
    def __init__(self, interleaved: bool) -> None:
        super().__init__()
        self.interleaved = interleaved
        self.embed, self.score = nn.Embedding(30, 16), nn.Linear(16, 1)

    def forward(self, choices: list) -> torch.Tensor:
        b, c = choices[0].shape[0], len(choices)
        ids = torch.stack(choices).view(b, c, -1) if self.interleaved else torch.stack(choices, 1)
        h = self.embed(ids.reshape(b * c, -1)).mean(1)
        return self.score(torch.tanh(h)).view(b, c)

    def training_step(self, batch, batch_idx):
        choices, label = batch
        return F.cross_entropy(self(choices), label)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _choices():
    g = torch.Generator().manual_seed(0)
    items = [([torch.randint(0, 30, (6,), generator=g) for _ in range(4)], int(torch.randint(0, 4, (1,), generator=g)))
             for _ in range(64)]
    return DataLoader(items, batch_size=16)  # default collate: a list of 4 tensors of shape (16, 6)


class BagClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.bag, self.head = nn.EmbeddingBag(30, 16), nn.Linear(16, 3)

    def forward(self, offsets: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(text, offsets))

    def training_step(self, batch, batch_idx):
        offsets, text, label = batch  # the samples first: the batch's size is read from the offsets
        return F.cross_entropy(self(offsets, text), label)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _bags():
    g = torch.Generator().manual_seed(0)
    rows = [(torch.randint(0, 30, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g), i % 3)
            for i in range(64)]

    def collate(items):  # the torchtext recipe: one flat token stream, each sample's start in `offsets`
        lengths = torch.tensor([len(t) for t, _ in items])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        return offsets, torch.cat([t for t, _ in items]), torch.tensor([y for _, y in items])

    return DataLoader(rows, batch_size=16, collate_fn=collate)


def _report(tmp_path, model, data) -> dict:
    L.seed_everything(0)
    t = trainer(tmp_path, [ModelChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    t.fit(model, data)
    return read_report(t.log_dir)


@pytest.mark.parametrize("interleaved", [True, False])
def test_choices_stacked_across_samples_fire(tmp_path, interleaved):
    report = _report(tmp_path, ChoiceScorer(interleaved), _choices())
    found = serious(report, "batch-mixing")
    assert bool(found) is interleaved, found
    if interleaved:
        assert found[0]["data"]["permutation"]
    else:
        detail = {c["name"]: c for c in report["checks"]}["batch-mixing"]["detail"]
        assert "reordering the batch changes 0 of" in detail, detail


def test_flat_token_stream_with_offsets_is_not_reordered(tmp_path):
    report = _report(tmp_path, BagClassifier(), _bags())
    assert not serious(report, "batch-mixing")
    status = {c["name"]: c for c in report["checks"]}["batch-mixing"]
    assert status["status"] == "skipped", status
