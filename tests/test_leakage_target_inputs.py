"""target-leakage on real Trainers for inputs computed from the target: a segmentation input channel drawn from the
mask (Sobel of the mask vs of the image), a text classifier whose tokens hold the label word (vs informative but
imperfect keywords), and an HF-style character LM with a per-position flag read from the next character (vs one
read from the previous character)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.target_inputs import determined, label_tokens, mask_channels, next_token_features

SOBEL = torch.tensor([[[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]])


def _sobel(img: torch.Tensor) -> torch.Tensor:
    k = torch.stack([SOBEL, SOBEL.transpose(1, 2)])
    return F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), k).pow(2).sum(1, keepdim=True).sqrt()


def _scenes(from_mask: bool, n: int = 32, size: int = 12) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = torch.rand(n, 2, generator=g) * 6 + 3
    mask = (((xx - c[:, :1, None]) / 3) ** 2 + ((yy - c[:, 1:, None]) / 2.5) ** 2 <= 1).float()[:, None]
    image = mask + 0.5 * torch.randn(mask.shape, generator=g)
    x = torch.cat([image, _sobel(mask if from_mask else image)], 1)
    return DataLoader(TensorDataset((x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True), mask),
                      batch_size=16)


class Segmenter(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, mask = batch
        return F.binary_cross_entropy_with_logits(self.net(x), mask)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _documents(label_word: bool, n: int = 64, words: int = 40, topics: int = 4, first: bool = False) -> DataLoader:
    """Each word is on-topic with probability 0.4: informative keywords, none present in every sample of a class.
    ``first``: a synthetic task whose class is its first token, on purpose."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, topics, (n,), generator=g)
    on = torch.rand(n, 12, generator=g) < 0.4
    ids = torch.where(on, y[:, None] * 10 + torch.randint(0, 10, (n, 12), generator=g),
                      torch.randint(0, words, (n, 12), generator=g))
    lengths = torch.randint(5, 12, (n,), generator=g)
    ids = torch.cat([ids, torch.zeros(n, 1, dtype=torch.long)], 1)
    if label_word:
        ids[torch.arange(n), lengths] = words + y  # "... [label word]" appended after the text
    if first:
        ids[:, 0] = words + y
    real = torch.arange(13) < lengths[:, None] + int(label_word)
    ids = torch.where(real, ids, torch.full_like(ids, words + topics))  # right padding
    return DataLoader(TensorDataset(ids, y), batch_size=32)


class BagClassifier(L.LightningModule):
    def __init__(self, vocab: int = 45, topics: int = 4) -> None:
        super().__init__()
        self.bag, self.head = nn.EmbeddingBag(vocab, 16, padding_idx=vocab - 1), nn.Linear(16, topics)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        ids, y = batch
        return F.cross_entropy(self.head(self.bag(ids)), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


SPACE = 0


def _chars(flag_from_next: bool, n: int = 32, length: int = 24) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    lexicon = [torch.randint(1, 9, (k,), generator=g) for k in (2, 3, 3, 4, 5, 2, 4, 3)]
    pieces = []
    while sum(len(p) for p in pieces) < n * length:
        pieces += [lexicon[int(torch.randint(0, len(lexicon), (1,), generator=g))], torch.tensor([SPACE])]
    ids = torch.cat(pieces)[: n * length].view(n, length)
    space = torch.full_like(ids[:, :1], SPACE)
    neighbour = torch.cat([ids[:, 1:], space], 1) if flag_from_next else torch.cat([space, ids[:, :-1]], 1)
    rows = [{"input_ids": ids[i], "flag": (neighbour[i] == SPACE).float(), "labels": ids[i]} for i in range(n)]
    return DataLoader(rows, batch_size=16)


@dataclass
class Output:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


class CharLM(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.flag = nn.Embedding(9, 16), nn.Linear(1, 16)
        self.rnn, self.head = nn.GRU(16, 16, batch_first=True), nn.Linear(16, 9)

    def forward(self, input_ids: torch.Tensor, flag: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Output:
        logits = self.head(self.rnn(self.embed(input_ids) + self.flag(flag[..., None]))[0])
        loss = None if labels is None else F.cross_entropy(logits[:, :-1].reshape(-1, 9), labels[:, 1:].reshape(-1))
        return Output(logits, loss)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(**batch).loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


CASES = {"mask": (Segmenter, _scenes, "window"), "tokens": (BagClassifier, _documents, "tokens"),
         "flag": (CharLM, _chars, "features")}


@pytest.mark.parametrize("leak", [True, False])
@pytest.mark.parametrize("case", sorted(CASES))
def test_input_computed_from_target_fires_healthy_twin_is_silent(tmp_path, case, leak):
    model, data, key = CASES[case]
    L.seed_everything(0)
    report = fit_report(tmp_path, model(), data(leak), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    checks = {c["name"]: c for c in report["checks"]}
    if leak:
        assert found and found[0]["severity"] == "error" and key in found[0]["data"], report["findings"]
        assert found[0]["advice"]
    else:
        assert not serious(report), report["findings"]
        assert checks["target-leakage"]["status"] == "pass"


def test_a_class_token_at_the_start_is_a_task_not_a_leak(tmp_path):
    L.seed_everything(0)
    report = fit_report(tmp_path, BagClassifier(), _documents(False, first=True),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    assert not serious(report), report["findings"]


def test_chance_bounds():
    # A constant proves nothing; a function of keys that are all distinct proves nothing either.
    keys = torch.arange(40)
    assert determined(keys % 4, torch.ones(40)) == (False, 0.0)
    assert not determined(keys, torch.randn(40))[0]
    # Two distinct documents repeated: every token "marks" its class by chance.
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]]).repeat(16, 1)
    assert label_tokens(ids, torch.tensor([0, 1]).repeat(16)) is None
    # An input that is only a rendering of the mask (a noise-free toy) is the task, not a leak.
    m = (torch.rand(4, 1, 10, 10, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    assert mask_channels(torch.cat([m, _sobel(m)], 1), m) == []
    # A batch longer than the scanned rows is cut, not skipped.
    ids = torch.randint(0, 5, (64, 513), generator=torch.Generator().manual_seed(0))
    flags = {"end": (ids[:, 1:] == 0).float(), "start": (ids[:, :-1] == 0).float()}
    assert [n for n, _ in next_token_features(ids[:, :-1], ids[:, 1:], flags)] == ["end"]
