"""input-scale and a model that standardises its own raw inputs (RevIN-style: it reads the window's mean and std,
then subtracts and divides): silent, while a model that reads a statistic but feeds the raw values on still fires."""

import lightning as L
from _models_fitstart import my_callbacks
from helpers import Classifier, digits, fit_report, loader, serious
from torch import nn
import torch


def _run(tmp_path, net):
    L.seed_everything(0)
    x, y = digits(512)
    return fit_report(tmp_path, Classifier(net=net), loader(40 + 5 * x, y), my_callbacks(),
                      max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0)


class _InstanceNormalised(nn.Module):
    """Per-sample standardisation inside forward, as RevIN does."""

    def __init__(self, extra=0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64 + extra, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        mean, std = x.mean(1, keepdim=True), x.std(1, keepdim=True)
        return self.net((x - mean) / (std + 1e-5))


class _RawWithMean(_InstanceNormalised):
    """Reads the mean of each sample, then feeds the raw values on next to it."""

    def __init__(self):
        super().__init__(extra=1)

    def forward(self, x):
        return self.net(torch.cat([x, x.mean(1, keepdim=True)], 1))


def _scale(report):
    return [f for f in report["findings"] if f["check"] == "input-scale" and "unit scale" in f["message"]]


def test_instance_normalised_raw_input_is_only_info(tmp_path):
    report = _run(tmp_path, _InstanceNormalised())
    assert [f for f in serious(report) if f["check"] == "input-scale"] == []
    (info,) = _scale(report)
    assert info["severity"] == "info" and info["data"]["first_op"] in ("__sub__", "sub"), info


def test_a_statistic_then_the_raw_values_still_fires(tmp_path):
    (finding,) = _scale(_run(tmp_path, _RawWithMean()))
    assert finding["severity"] == "warning" and finding["data"]["first_op"] == "cat", finding
