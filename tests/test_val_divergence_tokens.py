"""val-divergence on token inputs: validation texts encoded without the training texts' normalisation (most of
their words the unknown token) fire; a healthy split of the same texts, and a random split of natural-looking texts
with very different lengths per batch, stay silent."""

from __future__ import annotations

import lightning as L
import torch
from helpers import LossSteps, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence
from lightning_sanity.checks import token_shift as T

VOCAB, UNK = 60, 1


class BagClassifier(LossSteps):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16, padding_idx=0)
        self.head = nn.Linear(16, 2)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask[..., None].float()
        return self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp_min(1))

    def _loss(self, batch):
        return nn.functional.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])


def _texts(n: int, seed: int, unknown: float = 0.0):
    """Zipf-like word ids 2..VOCAB-1, the label cued by words 2-5 vs 6-9; ``unknown`` of the words become UNK."""
    g = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, VOCAB - 1).float()
    items = []
    for _ in range(n):
        label = int(torch.randint(2, (1,), generator=g))
        length = int(torch.randint(5, 30, (1,), generator=g))
        words = torch.multinomial(weights, length, replacement=True, generator=g) + 2
        words[0] = 2 + 4 * label + int(torch.randint(4, (1,), generator=g))
        words[torch.rand(length, generator=g) < unknown] = UNK
        items.append((words, label))
    return items


def _collate(batch):
    width = max(len(w) for w, _ in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    for i, (w, _) in enumerate(batch):
        ids[i, : len(w)] = w
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([y for _, y in batch])}


def _fit(tmp_path, train, val):
    L.seed_everything(0)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(BagClassifier(), DataLoader(train, batch_size=16, shuffle=True, collate_fn=_collate),
          DataLoader(val, batch_size=64, collate_fn=_collate))
    return read_report(t.log_dir)


def test_validation_texts_mostly_unknown_tokens_fire(tmp_path):
    report = _fit(tmp_path, _texts(400, 0), _texts(120, 1, unknown=0.4))
    found = [f for f in serious(report, "val-divergence") if f["data"].get("pattern") == "token-shift"]
    assert found and found[0]["data"]["token"] == UNK
    assert found[0]["data"]["train_share"] == 0.0 and found[0]["data"]["val_share"] > 0.9


def test_healthy_split_stays_silent(tmp_path):
    report = _fit(tmp_path, _texts(400, 0), _texts(120, 1))
    assert not [f for f in serious(report, "val-divergence") if f["data"].get("pattern") == "token-shift"]


def test_sampling_noise_of_document_frequencies_stays_below_the_bound():
    g = torch.Generator().manual_seed(3)
    for trial in range(20):  # same distribution, independent samples: never beyond the Bonferroni bound
        # 5 ids, 3 per sample: each holds 20 % of the positions, the share that makes a token matter
        train, val = (torch.multinomial(torch.ones(5), 3 * n, replacement=True, generator=g).view(n, 3)
                      for n in (300, 60))
        (td, tp), (vd, vp) = T.presence(train, None), T.presence(val, None)
        assert T.judge(td, 300, vd, 60, tp, vp) is None


def test_longer_validation_texts_raise_document_frequencies_but_stay_silent():
    g = torch.Generator().manual_seed(4)
    weights = torch.tensor([4.0, 2.0, 1.0, 1.0, 1.0, 1.0])  # id 1 holds a fifth of the positions in both splits
    train = torch.multinomial(weights, 400 * 4, replacement=True, generator=g).view(400, 4)
    val = torch.multinomial(weights, 200 * 16, replacement=True, generator=g).view(200, 16)
    (td, tp), (vd, vp) = T.presence(train, None), T.presence(val, None)
    pooled = (td[1] + vd[1]) / 600
    z = (vd[1] / 200 - td[1] / 400) / (pooled * (1 - pooled) * (1 / 400 + 1 / 200)) ** 0.5
    assert z > 6  # the document frequency alone would fire
    assert T.judge(td, 400, vd, 200, tp, vp) is None
