"""label-distribution: a constant class index into a group of candidates the input holds (a listwise reranker's
positive-first groups) is a layout, not constant labels; constant labels of a plain sequence classifier still fire,
and a label that equals the padding token is called padding only when the labels are laid out like the tokens."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader

_VOCAB, _PAD, _GROUP, _LENGTH = 20, 0, 4, 8


def _groups(n, seed):
    """Each sample: a query token and 4 candidate sequences; the first holds the query token, the others do not."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        query = int(torch.randint(1, _VOCAB, (1,), generator=g))
        cands = torch.full((_GROUP, _LENGTH), _PAD)
        for i in range(_GROUP):
            length = int(torch.randint(3, _LENGTH + 1, (1,), generator=g))
            words = torch.randint(1, _VOCAB, (length,), generator=g)
            words[words == query] = query % (_VOCAB - 1) + 1
            if i == 0:
                words[int(torch.randint(0, length, (1,), generator=g))] = query
            cands[i, :length] = words
        ids = torch.cat([torch.full((_GROUP, 1), query), cands], 1)
        items.append({"input_ids": ids, "attention_mask": (ids != _PAD).long(), "labels": torch.tensor(0)})
    return DataLoader(items, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))


def _sequences(n, seed):
    """Padded token sequences whose labels were read from the wrong column: every label is 0 (the pad token too)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        ids = torch.full((_LENGTH,), _PAD)
        length = int(torch.randint(3, _LENGTH + 1, (1,), generator=g))
        ids[:length] = torch.randint(1, _VOCAB, (length,), generator=g)
        items.append({"input_ids": ids, "attention_mask": (ids != _PAD).long(), "labels": torch.tensor(0)})
    return DataLoader(items, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))


class _Scorer(L.LightningModule):
    """Scores each sequence with the same function; grouped inputs give one logit per candidate."""

    def __init__(self, classes=None):
        super().__init__()
        self.embed = nn.Embedding(_VOCAB, 16, padding_idx=_PAD)
        self.mix = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, classes or 1))

    def forward(self, input_ids, attention_mask):
        shape = input_ids.shape
        ids, mask = input_ids.reshape(-1, shape[-1]), attention_mask.reshape(-1, shape[-1]).unsqueeze(-1)
        e = self.embed(ids)
        pooled = (e * mask).sum(1) / mask.sum(1).clamp(min=1)
        out = self.mix(torch.cat([pooled, e[:, 0]], 1))
        return out.view(shape[0], shape[1]) if len(shape) == 3 else out

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def test_positive_first_groups_are_not_constant_labels(tmp_path):
    L.seed_everything(0)
    report = read_report(fit(_Scorer(), tmp_path, _groups(256, 0), max_epochs=2).log_dir)
    assert serious(report, "label-distribution") == [], report["findings"]
    (slot,) = [f for f in report["findings"] if f["check"] == "label-distribution"]
    assert slot["severity"] == "info" and slot["data"]["candidates"] == _GROUP


@pytest.mark.parametrize("classes", [3, _GROUP])
def test_constant_labels_of_a_sequence_classifier_still_fire_and_are_not_called_padding(tmp_path, classes):
    L.seed_everything(0)
    report = read_report(fit(_Scorer(classes), tmp_path, _sequences(256, 0), max_epochs=1).log_dir)
    (finding,) = serious(report, "label-distribution")
    assert finding["severity"] == "error" and "Every target" in finding["message"]
    assert "padding" not in finding["message"]  # one label per sequence cannot be the padding token
