"""update-ratio measured in bins of layers, one bin per measuring step: the copy stays within the largest layer
and every layer is still measured, with the same figures as a whole-model copy."""

import lightning as L
import pytest
import torch
from helpers import Classifier, fit, read_report, serious
from torch import nn

from lightning_sanity.callbacks import _update_bins as norms_module
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


def _median_ratio(monitor, layer):
    history = monitor._history
    ratios = [(u[layer] / w[layer]).sqrt().item()
              for u, w, v in zip(history.upd_sq, history.upd_weight, history.upd_valid) if v[layer]]
    return sorted(ratios)[len(ratios) // 2], len(ratios)


def test_large_parameters_are_copied_in_slices_with_the_same_figures(tmp_path, monkeypatch):
    """A parameter larger than a bin is copied a quarter at a time; its scaled update matches the whole copy."""
    monkeypatch.setattr(norms_module, "_SLICES_OF_LARGEST", 4)
    whole, _ = _run(tmp_path / "whole", 1e-2, monkeypatch, bin_min=1 << 30)
    sliced, report = _run(tmp_path / "sliced", 1e-2, monkeypatch, bin_min=1)
    bins = sliced._meter.bins
    assert not bins.whole and bins.budget == -(-(64 * 64 + 64) // 4)  # a quarter of the largest layer
    assert bins.visits >= 4  # every quarter of each weight matrix was copied in turn
    for layer in (0, 1, 2):
        expected, _ = _median_ratio(whole, layer)
        got, looks = _median_ratio(sliced, layer)
        assert looks >= 3 and 0.67 < got / expected < 1.5, (layer, got, expected)
    assert not serious(report, "update-ratio")
