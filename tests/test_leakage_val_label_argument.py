"""target-leakage on a real Trainer for teacher forcing kept in validation: a hierarchical digits classifier whose
fine head is fed the gold group in training (by design) and in validation (the bug) fires; fed its own coarse
prediction in validation it stays silent, and so do a classifier handed its labels only for a loss computed inside
and a margin head handed them (its margin makes the gold labels fit worse)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


def _loaders() -> tuple[DataLoader, DataLoader]:
    x, y = digits(600)
    rows = [{"pixels": p, "group": label // 2, "label": label} for p, label in zip(x, y)]
    return DataLoader(rows[:480], batch_size=32, shuffle=True), DataLoader(rows[480:], batch_size=64)


class Hierarchical(L.LightningModule):
    def __init__(self, val_gold: bool) -> None:
        super().__init__()
        self.val_gold = val_gold
        self.trunk, self.coarse = nn.Sequential(nn.Linear(64, 64), nn.ReLU()), nn.Linear(64, 5)
        self.fine = nn.Linear(64 + 5, 10)

    def forward(self, pixels: torch.Tensor, group: torch.Tensor = None):
        h = self.trunk(pixels)
        coarse = self.coarse(h)
        group = coarse.argmax(-1) if group is None else group
        return coarse, self.fine(torch.cat([h, F.one_hot(group, 5).float()], 1))

    def training_step(self, batch, batch_idx):
        coarse, fine = self(batch["pixels"], batch["group"])  # teacher forcing: the gold group, in training
        return F.cross_entropy(coarse, batch["group"]) + F.cross_entropy(fine, batch["label"])

    def validation_step(self, batch, batch_idx):
        coarse, fine = self(batch["pixels"], batch["group"] if self.val_gold else None)
        self.log("val_loss", F.cross_entropy(coarse, batch["group"]) + F.cross_entropy(fine, batch["label"]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class InModelLoss(L.LightningModule):
    """HF-style: ``model(pixels, labels=labels)`` returns the loss and the logits; the labels feed the loss only."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, pixels: torch.Tensor, labels: torch.Tensor):
        logits = self.net(pixels)
        return F.cross_entropy(logits, labels), logits

    def training_step(self, batch, batch_idx):
        return self(batch["pixels"], batch["label"])[0]

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(batch["pixels"], batch["label"])[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class MarginHead(InModelLoss):
    """A CosFace-style head handed the labels (in validation too): the margin lowers each sample's own class score."""

    def forward(self, pixels: torch.Tensor, labels: torch.Tensor):
        cosine = F.normalize(self.net(pixels), dim=1)
        logits = 16 * (cosine - 0.35 * F.one_hot(labels, 10))
        return F.cross_entropy(logits, labels), logits


@pytest.mark.parametrize("model", ["gold group in validation", "predicted group in validation", "in-model loss",
                                   "margin head"])
def test_teacher_forcing_kept_in_validation_fires(tmp_path, model):
    module = {"in-model loss": InModelLoss, "margin head": MarginHead}.get(model, lambda: Hierarchical(
        model.startswith("gold")))()
    leakage = LeakageChecks()
    L.seed_everything(0)
    t = trainer(tmp_path, [leakage, SanitySummary(print_summary=False)], logger=None, max_epochs=1)
    t.fit(module, *_loaders())
    found = serious(read_report(t.log_dir), "target-leakage")
    assert bool(found) is model.startswith("gold"), [f["message"] for f in found]
    if found:
        data = found[0]["data"]
        assert data["label"] == "group" and data["samples"] == 64 and data["gain"] > 0.01
    elif model != "predicted group in validation":  # the look ran: handed the labels, the scores do not read them
        assert any("do not read it" in r for r in leakage._ran["target-leakage"])
