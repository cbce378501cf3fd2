"""target-leakage on real Trainers for a tagger whose corpus was scrubbed with its gold spans: every PER and LOC word
replaced by a ``[PER]`` / ``[LOC]`` placeholder (IO tags, and BIO tags where the placeholder fills B- and I-
positions alike) fires; the raw corpus, a tagger that shares ``<unk>`` between rare names and rare common words, a
POS tagger whose punctuation class is one token and a BIO tagger that wraps each sentence in ``<s>`` tagged ``START``
stay silent. Words are integers: common words below 900, names ``1000 * type + k``."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.tag_placeholders import tag_placeholders

PAD, UNK, START, PLACEHOLDER = 0, 1, 2, {1: 3, 2: 4}
VOCAB = 6000


def _sentence(kind: str, g: torch.Generator) -> tuple[list[int], list[int]]:
    bio = kind in ("scrub-bio", "raw-bio", "frame")
    words, tags = [], []
    for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
        for _ in range(int(torch.randint(1, 5, (1,), generator=g))):  # common words, now and then a rare one
            rare = kind == "unk" and float(torch.rand(1, generator=g)) < 0.15
            words.append(UNK if rare else int(torch.randint(10, 900, (1,), generator=g))), tags.append(0)
        t = int(torch.randint(1, 3, (1,), generator=g))
        for k in range(int(torch.randint(1, 3, (1,), generator=g)) if bio else 1):  # a first name, a surname
            name = 1000 * t + int(torch.randint(0, 400, (1,), generator=g))
            if kind in ("scrub", "scrub-bio"):  # the privacy step: the gold span becomes its placeholder
                name = PLACEHOLDER[t]
            elif kind == "unk" and float(torch.rand(1, generator=g)) < 0.5:
                name = UNK
            words.append(name), tags.append((2 * t - 1 + (k > 0)) if bio else t)
    if kind == "pos":  # a POS tagset: nouns, verbs, others, and "." (tag 3) closing every sentence
        tags = [0 if w >= 1000 else 1 + w % 2 for w in words]
        words, tags = words + [5], tags + [3]
    if kind == "frame":  # <s> tagged START (5) before every sentence
        words, tags = [START] + words, [5] + tags
    return words, tags


def _data(kind: str, n: int = 96) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    sents = [_sentence(kind, g) for _ in range(n)]

    def collate(batch: list) -> dict:
        T = max(len(w) for w, _ in batch)
        out = {"input_ids": torch.full((len(batch), T), PAD), "attention_mask": torch.zeros(len(batch), T, dtype=torch.long),
               "labels": torch.full((len(batch), T), -100)}
        for i, (w, t) in enumerate(batch):
            out["input_ids"][i, : len(w)], out["labels"][i, : len(t)] = torch.tensor(w), torch.tensor(t)
            out["attention_mask"][i, : len(w)] = 1
        return out

    return DataLoader(sents, batch_size=48, collate_fn=collate)


class GruTagger(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16, padding_idx=PAD)
        self.gru, self.head = nn.GRU(16, 16, batch_first=True, bidirectional=True), nn.Linear(32, 6)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.head(self.gru(self.embed(batch["input_ids"]))[0])
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("kind", ["scrub", "scrub-bio", "raw", "raw-bio", "unk", "pos", "frame"])
def test_gold_span_placeholders_fire(tmp_path, kind):
    L.seed_everything(0)
    report = fit_report(tmp_path, GruTagger(), _data(kind), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    if kind.startswith("scrub"):
        assert found and found[0]["severity"] == "warning" and "covered" in found[0]["data"], found
        expected = {"3": [1]} if kind == "scrub" else {"3": [1, 2]}
        assert expected.items() <= found[0]["data"]["tokens"].items() and "raw text" in found[0]["message"]
    else:
        assert not serious(report), report["findings"]
        target = next(c for c in report["checks"] if c["name"] == "target-leakage")
        assert target["status"] == "pass" and "stands for every word of a tag class" in target["detail"]


class TupleTagger(GruTagger):
    """The same tagger on ``(ids, lengths, tags)`` batches: the second part is not the target."""

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        ids, lengths, tags = batch
        logits = self.head(self.gru(self.embed(ids))[0])
        return F.cross_entropy(logits.reshape(-1, 6), tags.reshape(-1), ignore_index=-100)


@pytest.mark.parametrize("kind", ["scrub", "raw"])
def test_placeholders_found_through_the_loss_target(tmp_path, kind):
    dicts = _data(kind)
    batches = [(b["input_ids"], b["attention_mask"].sum(1), b["labels"]) for b in dicts]
    L.seed_everything(0)
    report = fit_report(tmp_path, TupleTagger(), DataLoader(batches, batch_size=None),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) == (kind == "scrub"), report["findings"]
    assert not found or found[0]["data"]["tokens"] == {"3": [1], "4": [2]}
    detail = next(c for c in report["checks"] if c["name"] == "target-leakage").get("detail", "")
    assert found or "stands for every word of a tag class" in detail


def _one_name_each(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids, tags = torch.randint(10, 900, (n, 8), generator=g), torch.zeros(n, 8, dtype=torch.long)
    at = torch.randint(0, 8, (n,), generator=g)
    ids[torch.arange(n), at], tags[torch.arange(n), at] = 3, 1
    return ids, tags


def test_few_samples_are_no_evidence():
    """Sentences whose one name each is the same word: ten may be by chance, twenty are not."""
    assert tag_placeholders(*_one_name_each(10)) == []
    assert [(p.token, p.classes, p.covered) for p in tag_placeholders(*_one_name_each(20))] == [(3, [1], 20)]
