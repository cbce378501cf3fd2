"""target-leakage on real Trainers for a per-token lexicon feature built from the corpus's own tags (a gazetteer that
flags every word tagged as an entity anywhere in the annotated corpus), against the honest per-token features of a
tagger: an external gazetteer (partial coverage, ambiguous names), capitalisation, part-of-speech tags, character
ids. The words are integers; names are mostly out of the vocabulary (one ``<unk>`` id), as in real NER."""

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

FILLER, TYPES, UNK = 40, 3, 1
#: words that are a name of one type and a common word elsewhere ("may", "bath", "shell").
AMBIGUOUS = {t: [5000 + 10 * t + k for k in range(2)] for t in range(1, TYPES + 1)}


def _corpus(n: int, g: torch.Generator) -> list[tuple[list[int], list[int]]]:
    """Sentences of common words (tag 0; rare ones ``100..899``) with one or two names of types 1..3 (names
    ``1000 * t + k``)."""
    sents = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):  # a common word, now and then a rare one
                rare = float(torch.rand(1, generator=g)) < 0.2
                words.append(int(torch.randint(100, 900, (1,), generator=g)) if rare else
                             int(torch.randint(0, FILLER, (1,), generator=g))), tags.append(0)
            t = int(torch.randint(1, TYPES + 1, (1,), generator=g))
            ambiguous = float(torch.rand(1, generator=g)) < 0.1
            name = AMBIGUOUS[t][0] if ambiguous else 1000 * t + int(torch.randint(0, 400, (1,), generator=g))
            words.append(name), tags.append(t)
        if float(torch.rand(1, generator=g)) < 0.3:  # an ambiguous word used as a common word
            words.append(AMBIGUOUS[int(torch.randint(1, TYPES + 1, (1,), generator=g))][0]), tags.append(0)
        sents.append((words, tags))
    return sents


def _features(kind: str, words: list[int], corpus_lists: dict[int, set]) -> torch.Tensor:
    """One feature row per word: ``(T, F)``."""
    if kind == "corpus":  # every word tagged with a type anywhere in the corpus: the leak
        return torch.tensor([[float(w in corpus_lists[t]) for t in range(1, TYPES + 1)] for w in words])
    if kind == "external":  # a name list from elsewhere: two thirds of the names, and the ambiguous words
        return torch.tensor([[float(w // 1000 == t and w % 1000 < 270 or w in AMBIGUOUS[t])
                              for t in range(1, TYPES + 1)] for w in words])
    if kind == "shape":  # capitalised: names and the first word
        return torch.tensor([[float(w >= 1000 or i == 0)] for i, w in enumerate(words)])
    if kind == "pos":  # a deterministic tagger's part of speech: proper noun for names, else one of four
        return torch.tensor([[1.0 if w >= 1000 else float(2 + w % 4)] for w in words])
    # character ids: the word's decimal digits, right-aligned in four places
    return torch.tensor([[float(int(c) + 1) for c in f"{w:04d}"[-4:]] for w in words])


def _loader(kind: str, n: int = 256) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    corpus = _corpus(n, g)
    lists = {t: {w for ws, ts in corpus for w, tag in zip(ws, ts) if tag == t} for t in range(1, TYPES + 1)}
    counts: dict[int, int] = {}
    for ws, _ in corpus:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    vocab = {w: i + 2 for i, w in enumerate(sorted(w for w, c in counts.items() if c >= 3))}
    rows = []
    for ws, ts in corpus:
        rows.append({"input_ids": torch.tensor([vocab.get(w, UNK) for w in ws]), "features": _features(kind, ws, lists),
                     "labels": torch.tensor(ts)})
    return DataLoader(rows, batch_size=32, collate_fn=lambda items: _collate(items, len(vocab) + 2))


def _collate(items: list[dict], vocab: int) -> dict:
    t = max(len(it["input_ids"]) for it in items)
    width = items[0]["features"].shape[1]
    out = {"input_ids": torch.zeros(len(items), t, dtype=torch.long), "features": torch.zeros(len(items), t, width),
           "labels": torch.full((len(items), t), -100, dtype=torch.long)}
    for i, it in enumerate(items):
        k = len(it["input_ids"])
        out["input_ids"][i, :k], out["features"][i, :k], out["labels"][i, :k] = it["input_ids"], it["features"], \
            it["labels"]
    out["input_ids"].clamp_(max=vocab - 1)
    return out


class FeatureTagger(L.LightningModule):
    """Word embeddings and the per-token features into a BiGRU, one tag per token."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed, self.feat = nn.Embedding(512, 16), nn.Linear(width, 16)
        self.rnn, self.head = nn.GRU(16, 16, batch_first=True, bidirectional=True), nn.Linear(32, TYPES + 1)

    def forward(self, input_ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(input_ids) + self.feat(features))[0])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["features"])
        return F.cross_entropy(logits.reshape(-1, TYPES + 1), batch["labels"].reshape(-1), ignore_index=-100)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("kind", ["corpus", "external", "shape", "pos", "chars"])
def test_gazetteer_from_the_corpus_tags_fires_honest_token_features_are_silent(tmp_path, kind):
    L.seed_everything(0)
    data = _loader(kind)
    width = next(iter(data))["features"].shape[-1]
    report = fit_report(tmp_path, FeatureTagger(width), data, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    if kind == "corpus":
        assert found and found[0]["where"] == "batch['features']", report["findings"]
        assert found[0]["data"]["how"] == "unexplained" and found[0]["data"]["classes"] == TYPES + 1
        assert found[0]["data"]["log10_chance"] < -10 and "gazetteer" in found[0]["advice"]
    else:
        assert not serious(report), report["findings"]
        assert {c["name"]: c for c in report["checks"]}["target-leakage"]["status"] == "pass"
