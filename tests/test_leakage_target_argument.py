"""target-leakage on real Trainers for a model call handed the target of one of its losses from which another head's
label is derived: a defect segmenter whose "defective?" head pools its features over the ground-truth mask it is
given (``self(image, mask)``). Healthy twins: the same call whose head pools over the predicted mask (the argument
feeds nothing the head reads), and a hierarchical classifier fed the gold coarse group (teacher forcing: the fine
label is no function of the group)."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks._target_argument import keep_target_argument
from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary

SIZE = 16


def _plates(n: int = 256) -> TensorDataset:
    """Noisy plates; half carry a faint dark square (the defect) whose mask is the segmentation target."""
    g = torch.Generator().manual_seed(0)
    img, mask = torch.randn(n, 1, SIZE, SIZE, generator=g) * 0.5, torch.zeros(n, 1, SIZE, SIZE)
    defective = torch.rand(n, generator=g) < 0.5
    for i in torch.nonzero(defective).flatten().tolist():
        r, c = torch.randint(1, SIZE - 5, (2,), generator=g).tolist()
        mask[i, 0, r:r + 4, c:c + 4] = 1.0
    return TensorDataset(img - 0.8 * mask, mask, defective.float())


class DefectNet(L.LightningModule):
    """A small fully convolutional segmenter with a classification head pooled over a mask: the given one
    (``gold=True``), else its own prediction."""

    def __init__(self, gold: bool) -> None:
        super().__init__()
        self.gold = gold
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.seg, self.cls = nn.Conv2d(8, 1, 1), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        seg = self.seg(h)
        weight = mask if self.gold else torch.sigmoid(seg)
        pooled = (h * weight).sum((2, 3)) / (weight.sum((2, 3)) + 1e-6)
        return seg, self.cls(pooled).squeeze(1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, mask, defective = batch
        seg, logit = self(x, mask)
        return F.binary_cross_entropy_with_logits(seg, mask) + F.binary_cross_entropy_with_logits(logit, defective)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Hierarchical(L.LightningModule):
    """Digits: a coarse head (label // 2) and a fine head fed the gold coarse group (teacher forcing)."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.coarse = nn.Sequential(nn.Linear(64, 32), nn.ReLU()), nn.Linear(32, 5)
        self.group, self.fine = nn.Embedding(5, 32), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.coarse(h), self.fine(h + self.group(group))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, label, group = batch
        coarse, fine = self(x, group)
        return F.cross_entropy(coarse, group) + F.cross_entropy(fine, label)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _fit(tmp_path: Any, model: L.LightningModule, data: DataLoader) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, model, data, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None,
                      max_epochs=4)


@pytest.mark.parametrize("gold", [True, False])
def test_head_pooling_over_the_ground_truth_mask_fires_predicted_mask_is_silent(tmp_path, gold):
    report = _fit(tmp_path, DefectNet(gold), DataLoader(_plates(), batch_size=32, shuffle=True))
    found = serious(report, "target-leakage")
    if gold:
        assert found and found[0]["data"]["head"] == "binary_cross_entropy_with_logits", report["findings"]
        assert found[0]["data"]["towards"] > 3 * found[0]["data"]["away"] and found[0]["data"]["argument"] == 1
    else:
        assert not serious(report), report["findings"]
        assert "do not read the loss target" in {c["name"]: c for c in report["checks"]}["target-leakage"]["detail"]


def test_fine_head_fed_the_gold_group_is_silent(tmp_path):
    x, y = digits(512)
    report = _fit(tmp_path, Hierarchical(), DataLoader(TensorDataset(x, y, y // 2), batch_size=64, shuffle=True))
    assert not serious(report, "target-leakage"), report["findings"]


def test_derived_label_needs_evidence_beyond_chance():
    x, mask = torch.randn(32, 4), torch.zeros(32, 3)
    mask[::2, 0] = torch.arange(16).float() + 1  # half the samples carry a mask, each its own
    flag, group, label = (mask.sum(1) > 0).float(), torch.arange(32) % 4 // 2, torch.arange(32) % 4
    call = {"x": x, "args": (x, mask), "kwargs": {}, "how": "m(...)", "where": None, "y": None,
            "fn": lambda a, k: a[0]}
    heads = [("binary_cross_entropy_with_logits", (32, 1, 3), mask), ("binary_cross_entropy_with_logits", (32,), flag)]
    kept = keep_target_argument(call, heads)
    assert kept is not None and kept["arg"] == 1 and kept["log10_chance"] < -3
    # The same flag on 8 samples: 4 empty masks agree by chance too often.
    few = dict(call, x=x[:8], args=(x[:8], mask[:8]))
    assert keep_target_argument(few, [(k, (8, *s[1:]), t[:8]) for k, s, t in heads]) is None
    # A fine label no function of the group handed to the model (hierarchical teacher forcing).
    grouped = dict(call, args=(x, group))
    assert keep_target_argument(grouped, [("cross_entropy", (32, 2), group), ("cross_entropy", (32, 4), label)]) is None
