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

from lightning_sanity.callbacks.data_checks import DataChecks
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
    t = trainer(tmp_path, [DataChecks(), SanitySummary(print_summary=False)], logger=None, max_epochs=1)
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


def test_frozen_statistics_lives_in_the_data_checks_and_switches_off_with_input_scale(tmp_path):
    """One home: DataChecks is the suite's only input-scale callback; ``disable=["input-scale"]`` hooks no
    BatchNorm, while label-distribution keeps running."""
    import lightning_sanity

    owners = [c for c in lightning_sanity.default_callbacks() if "input-scale" in getattr(c, "checks", ())]
    assert [type(c) for c in owners] == [DataChecks]

    d = load_digits()
    raw = torch.tensor(d.images[:256], dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:256])
    backbone = _backbone()
    torch.manual_seed(0)
    backbone[1].momentum = None  # learned running statistics: the exact ones of normalised pixels
    with torch.no_grad():
        backbone((raw / 16.0 - 0.3) / 0.45)
    for disable in ([], ["input-scale"]):
        L.seed_everything(0)
        callbacks = lightning_sanity.default_callbacks(disable=disable, print_summary=False)
        data_checks = next(c for c in callbacks if isinstance(c, DataChecks))
        t = trainer(tmp_path / str(len(disable)), callbacks, logger=None, max_epochs=1)
        t.fit(_Probe(backbone, frozen=True), DataLoader(TensorDataset(raw, y), batch_size=64))
        report = read_report(t.log_dir)
        found = [f for f in report["findings"] if f["check"] == "input-scale"]
        status = next(c for c in report["checks"] if c["name"] == "input-scale")["status"]
        assert not data_checks._frozen.hooks  # removed after the first batch either way
        if disable:
            assert not found and status == "skipped" and data_checks._frozen.seen is None, found
        else:  # the whole suite finds it in the one home
            assert [f["data"]["kind"] for f in found if f["severity"] == "warning"] == ["frozen-statistics"], found
