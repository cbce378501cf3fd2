"""input-scale ``frozen-statistics``: a conv backbone pretrained in plain PyTorch on standardised digits, frozen in
eval mode, fed raw 0..16 pixels by the fine-tuning pipeline fires; fed the pretraining normalisation it stays
silent, and so does a fresh (not pretrained) BatchNorm backbone on raw pixels."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import read_report, serious, trainer
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.pretrained_input import PretrainedInputScale
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.pretrained_input import judge_statistics


def _backbone():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten())


class _Probe(L.LightningModule):
    def __init__(self, backbone, frozen):
        super().__init__()
        self.backbone, self.frozen = backbone, frozen
        if frozen:
            self.backbone.requires_grad_(False)
        self.head = nn.Linear(32, 10)

    def on_train_epoch_start(self):
        if self.frozen:
            self.backbone.eval()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self.backbone(x)), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("inputs, pretrained, fires", [("raw", True, True), ("normalised", True, False),
                                                       ("raw", False, False)])
def test_raw_pixels_into_a_backbone_pretrained_on_normalised_ones_fire(tmp_path, inputs, pretrained, fires):
    d = load_digits()
    raw = torch.tensor(d.images[:512], dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:512])
    normalised = (raw / 16.0 - 0.3) / 0.45
    backbone = _backbone()
    if pretrained:  # the pretraining code normalises; a few train-mode steps learn the BatchNorm statistics
        torch.manual_seed(0)
        probe = nn.Linear(32, 10)
        opt = torch.optim.Adam(list(backbone.parameters()) + list(probe.parameters()), lr=1e-2)
        for idx in torch.arange(512).split(64):
            loss = nn.functional.cross_entropy(probe(backbone(normalised[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    x = raw if inputs == "raw" else normalised
    L.seed_everything(0)
    t = trainer(tmp_path, [PretrainedInputScale(), SanitySummary(print_summary=False)], logger=None, max_epochs=1)
    t.fit(_Probe(backbone, frozen=pretrained), DataLoader(TensorDataset(x, y), batch_size=64))
    found = serious(read_report(t.log_dir), "input-scale")
    if fires:
        assert found and found[0]["data"]["kind"] == "frozen-statistics" and found[0]["where"] == "backbone.1"
        assert found[0]["data"]["ratio"] > 4 and "normalisation" in found[0]["advice"]
    else:
        assert not found, found


def test_judgement_both_ways():
    assert judge_statistics(torch.full((4,), 0.1), torch.ones(4), "bn")["ratio"] < 0.25
    assert judge_statistics(torch.full((4,), 2.0), torch.ones(4), "bn") is None
