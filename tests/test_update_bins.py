"""update-ratio measured in bins of layers, one bin per measuring step: the copy stays within the largest layer
and every layer is still measured, with the same figures as a whole-model copy."""

import lightning as L
import pytest
import torch
from helpers import Classifier, fit, read_report, serious
from torch import nn

from lightning_sanity.callbacks import norm_meter as norms_module
from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(tmp_path, lr, monkeypatch, bin_min):
    monkeypatch.setattr(norms_module, "_UPDATE_BIN_MIN", bin_min)
    L.seed_everything(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    monitor = NormMonitor()
    trainer = fit(Classifier(net=net, lr=lr, optimizer="sgd"), tmp_path, max_epochs=2,
                  callbacks=[monitor, SanitySummary(print_summary=False)])
    return monitor, read_report(trainer.log_dir)


def test_bins_rotate_and_every_layer_is_measured(tmp_path, monkeypatch):
    monitor, report = _run(tmp_path, 1e-2, monkeypatch, bin_min=1)  # bins of the largest layer: 3 bins
    assert len(monitor._meter.bins.masks) == 3 and monitor._meter.bins.early == 10
    valid = torch.stack(monitor._history.upd_valid)
    assert (valid.sum(1) <= 1).all()  # one layer per measuring step
    assert (valid.sum(0)[[0, 1, 2]] >= 3).all()  # every weight layer measured several times
    assert not serious(report, "update-ratio")


def test_binned_measurement_still_finds_lr_far_too_low(tmp_path, monkeypatch):
    _, report = _run(tmp_path, 1e-10, monkeypatch, bin_min=1)
    (finding,) = serious(report, "update-ratio")
    assert finding["data"]["kind"] == "too_small" and len(finding["data"]["layers"]) == 3
