"""initial-loss and a new head on frozen pretrained features (fine-tuning).

A trunk pretrained on digits grows features well beyond unit scale; frozen, with a new head at PyTorch's default
initialisation, the first loss sits far above ln C. The features' scale, not the head's initialisation, spreads the
logits: info, with the optional zero-init advice. The same head drawn with std 1 (a head init the user chose) stays a
warning, and so does a default head on an unfrozen trunk of the same scale (nothing pretrained to excuse it).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary
from tests.helpers import digits_loaders, fit_report, serious


def _trunk(scale: float) -> nn.Sequential:
    torch.manual_seed(3)
    trunk = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
    with torch.no_grad():  # pretraining's result, in short: features far above unit scale
        trunk[2].weight.mul_(scale)
    return trunk


class FineTune(L.LightningModule):
    def __init__(self, frozen: bool, head_std: float | None = None, scale: float = 100.0) -> None:
        super().__init__()
        self.trunk = _trunk(scale).requires_grad_(not frozen)
        self.head = nn.Linear(64, 10)
        if head_std is not None:
            nn.init.normal_(self.head.weight, std=head_std)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.head(self.trunk(x)), y)

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=1e-3)


def _initial(tmp_path, model) -> list[dict]:
    L.seed_everything(0)
    train, _ = digits_loaders()
    report = fit_report(tmp_path, model, train, [LossInspector(), SanitySummary(print_summary=False)], max_steps=3)
    return [f for f in report["findings"] if f["check"] == "initial-loss"]


def test_default_head_on_frozen_pretrained_features_is_info(tmp_path):
    (finding,) = _initial(tmp_path, FineTune(frozen=True))
    assert finding["severity"] == "info" and finding["data"]["fresh_head"]
    assert finding["data"]["initial_loss"] > 2 * finding["data"]["uniform_loss"] + 2  # above the warning's bar


@pytest.mark.parametrize("model", [lambda: FineTune(frozen=True, head_std=1.0), lambda: FineTune(frozen=False)],
                         ids=["head_std_1", "trunk_not_frozen"])
def test_chosen_head_init_or_unfrozen_trunk_stays_a_warning(tmp_path, model):
    assert serious({"findings": _initial(tmp_path, model())}, "initial-loss")


class AdapterOnFrozenHead(FineTune):
    """A trainable adapter between a pretrained trunk and a frozen head whose confidence pretraining set (here a
    head of std 1, as a trained head may be): LoRA on a pretrained language model, whose output layer stays frozen."""

    def __init__(self, head_frozen: bool) -> None:
        super().__init__(frozen=True, head_std=1.0)
        self.adapter = nn.Linear(64, 64)
        self.head.requires_grad_(not head_frozen)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.head(self.adapter(self.trunk(x))), y)


@pytest.mark.parametrize("head_frozen", [True, False])
def test_frozen_head_starts_where_pretraining_left_it(tmp_path, head_frozen):
    findings = _initial(tmp_path, AdapterOnFrozenHead(head_frozen))
    if head_frozen:
        (finding,) = findings
        assert finding["severity"] == "info" and finding["data"]["frozen_head"]
    else:
        assert serious({"findings": findings}, "initial-loss")
