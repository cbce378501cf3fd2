"""train-mode: a frozen part whose BatchNorm statistics were never learned (a checkpoint that did not load)."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn


def _backbone():
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU())


def _pretrained_backbone():
    """A backbone trained for a few steps in plain torch, as a checkpoint would hold it (statistics included)."""
    torch.manual_seed(0)
    x, y = digits()
    model = nn.Sequential(_backbone(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for i in range(0, 640, 64):
        opt.zero_grad()
        F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
        opt.step()
    return model[0]


class _FrozenBackboneHead(L.LightningModule):
    """A frozen backbone (its BatchNorm in eval mode from the first epoch) and a new head."""

    def __init__(self, backbone, ema_teacher=False):
        super().__init__()
        self.backbone = backbone.requires_grad_(False)
        self.head = nn.Linear(32, 10)
        # A mean-teacher-style copy: frozen by requires_grad, random at the start, updated by EMA every step.
        self.teacher = copy.deepcopy(nn.Sequential(_backbone(), nn.Linear(32, 10))).requires_grad_(False) \
            if ema_teacher else None
        self.student = nn.Sequential(_backbone(), nn.Linear(32, 10)) if ema_teacher else None

    def on_train_epoch_start(self):
        self.backbone.eval()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.head(self.backbone(x)), y)
        if self.student is not None:
            loss = loss + F.cross_entropy(self.student(x), y)
            with torch.no_grad():
                teacher = self.teacher(x).softmax(1)
            loss = loss + F.cross_entropy(self.student(x), teacher)  # consistency with the teacher
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.teacher is not None:
            with torch.no_grad():
                for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                    t.mul_(0.9).add_(0.1 * s)

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=3e-3)


@pytest.mark.parametrize("case", ["not_loaded", "pretrained", "ema_teacher"])
def test_frozen_batchnorm_with_initial_statistics_is_a_checkpoint_not_loaded(tmp_path, case):
    L.seed_everything(0)
    x, y = digits()
    backbone = _backbone() if case == "not_loaded" else _pretrained_backbone()
    model = _FrozenBackboneHead(backbone, ema_teacher=case == "ema_teacher")
    report = read_report(fit(model, tmp_path, loader(x[:640], y[:640]), max_epochs=2).log_dir)
    found = serious(report, "train-mode")
    if case != "not_loaded":  # pretrained statistics, or a frozen copy that training updates
        assert not found, found
        return
    (finding,) = found
    assert finding["where"] == "backbone.1" and finding["global_step"] == 0
    assert "initial mean 0 / variance 1" in finding["message"] and "strict=True" in finding["advice"]
