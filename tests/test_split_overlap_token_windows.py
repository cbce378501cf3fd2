"""split-overlap on token windows: long documents cut into overlapping windows (HF `return_overflowing_tokens`) and
split at random fire; documents split first, windows of a small-vocabulary grammar and a split in time stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import LossSteps, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import token_windows as TW

WIDTH, STRIDE = 64, 16


class Pooled(LossSteps):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, 16), nn.Linear(16, 3)

    def _loss(self, batch):
        ids, y = batch
        return nn.functional.cross_entropy(self.head(self.embed(ids).mean(1)), y)


def _documents(n: int, vocab: int = 3000, length: int = 304, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (n, length), generator=g), torch.randint(3, (n,), generator=g)


def _windows(docs, labels, stride=STRIDE):
    w = docs.unfold(1, WIDTH, WIDTH - stride)  # (documents, windows, WIDTH)
    return w.reshape(-1, WIDTH), labels.repeat_interleave(w.shape[1])


def _fit(tmp_path, train, val, vocab=3000):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                num_sanity_val_steps=1)
    t.fit(Pooled(vocab), DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
          DataLoader(TensorDataset(*val), batch_size=64))
    return read_report(t.log_dir)


def test_overflow_windows_split_at_random_fire(tmp_path):
    x, y = _windows(*_documents(60))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    cut = int(0.85 * len(x))
    found = serious(_fit(tmp_path, (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])),
                    "split-overlap")
    assert found and found[0]["data"]["overlap_tokens"] == STRIDE, found
    assert found[0]["data"]["both_sides_share"] > 0.5 and found[0]["severity"] == "error"


@pytest.mark.parametrize("case", ["documents_first", "small_vocabulary", "in_time"])
def test_token_windows_without_shared_documents_stay_silent(tmp_path, case):
    if case == "documents_first":
        docs, labels = _documents(60)
        train, val = _windows(docs[:50], labels[:50]), _windows(docs[50:], labels[50:])
        vocab = 3000
    elif case == "small_vocabulary":  # 4 symbols, windows split at random but not overlapping: chance matches only
        docs, labels = _documents(60, vocab=5)
        x, y = _windows(docs, labels, stride=0)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
        train, val, vocab = (x[order[:200]], y[order[:200]]), (x[order[200:]], y[order[200:]]), 5
    else:  # the last windows of each document for validation: overlap at the boundary, on one side only
        docs, labels = _documents(60)
        w = docs.unfold(1, WIDTH, WIDTH - STRIDE)
        train = w[:, :4].reshape(-1, WIDTH), labels.repeat_interleave(4)
        val = w[:, 4:].reshape(-1, WIDTH), labels.repeat_interleave(w.shape[1] - 4)
        vocab = 3000
    report = _fit(tmp_path, train, val, vocab)
    assert not serious(report, "split-overlap")
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "token windows" in detail, detail


def test_periodic_text_matches_at_many_lengths():
    period = torch.arange(1, 7).repeat(40)  # a periodic grammar: every window's edges match at many lengths
    windows = torch.stack([period[i:i + WIDTH] for i in range(0, 150, 5)])
    t, v = TW.edge_hashes(windows[:20], 32), TW.edge_hashes(windows[20:], 32)
    found = TW.judge(*t, *v)
    assert found["chance"] >= found["both"]


def test_text_of_fixed_blocks_matches_on_the_same_side_too():
    # Windows built of 8-token motifs: a validation window's first 8 tokens end many training windows (a whole
    # motif) at exactly one length, as a stride-8 overlap would, but they also begin many: chance, not siblings.
    g = torch.Generator().manual_seed(13)
    motifs = torch.randint(1, 1000, (40, 8), generator=g)
    windows = motifs[torch.randint(0, 40, (260, WIDTH // 8), generator=g)].flatten(1)
    t, v = TW.edge_hashes(windows[:200], 32), TW.edge_hashes(windows[200:], 32)
    found = TW.judge(*t, *v)
    assert found["length"] == 8 and found["both"] > 0.9  # every other length matches far less often
    assert found["chance"] >= found["both"]
