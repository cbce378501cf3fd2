"""batchnorm-variance on micro-batches: a CNN whose BatchNorm layers normalise batches of 2 samples (with gradient
accumulation to an effective 8) is a warning; the same CNN on batches of 32 and a GroupNorm twin stay silent; the
hooks that read the batch size are removed after the first batch."""

import pytest
import torch
from helpers import Classifier, digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.batchnorm import BatchNormMonitor


def _cnn(norm: str) -> nn.Module:
    def layer(c):
        return nn.BatchNorm2d(c) if norm == "batch" else nn.GroupNorm(4, c)
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1), layer(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), layer(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 16, 10))


def _run(tmp_path, norm="batch", batch_size=2, accumulate=4):
    model = Classifier(net=_cnn(norm))
    t = fit(model, tmp_path, loader(*digits(256), batch_size=batch_size), loader(*digits(64), batch_size=32),
            callbacks=[BatchNormMonitor(batchnorm_scalars=False), SanitySummary(print_summary=False)],
            max_epochs=1, limit_train_batches=8, limit_val_batches=1, num_sanity_val_steps=0,
            accumulate_grad_batches=accumulate)
    return model, read_report(t.log_dir)


def test_batches_of_two_with_accumulation_are_a_warning(tmp_path):
    model, report = _run(tmp_path)
    (finding,) = serious(report, "batchnorm-variance")
    assert finding["data"]["samples"] == 2 and finding["data"]["modules"] == ["net.2", "net.5"]
    assert finding["data"]["accumulate_grad_batches"] == 4 and "8 samples per step" in finding["message"]
    assert all(not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("norm,batch_size,accumulate", [("batch", 32, 1), ("group", 2, 4)], ids=["bn-32", "gn-2"])
def test_large_batches_and_groupnorm_are_silent(tmp_path, norm, batch_size, accumulate):
    _, report = _run(tmp_path, norm, batch_size, accumulate)
    assert serious(report, "batchnorm-variance") == []
