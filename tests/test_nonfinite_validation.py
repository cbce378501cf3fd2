"""non-finite in validation only, on real Trainers: an attention-style mask that empties some rows in eval mode
(softmax over all -inf) gives NaN validation losses while training is finite and fires, with the epoch; the same
model with the mask that never empties a row stays silent, and nothing is consumed from the global RNG."""

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, loader, read_report, serious, trainer
from torch import nn

from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel
from lightning_sanity.callbacks.summary import SanitySummary


class MaskedInEval(Classifier):
    """In eval, scores are masked with -inf; the buggy mask masks every class of the samples whose first pixel is 0
    (as a padding mask combined with a causal mask leaves a query nothing to attend to); the healthy one masks none."""

    def __init__(self, empties_rows: bool):
        super().__init__(net=nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
        self.empties_rows = empties_rows

    def forward(self, x):
        scores = self.net(x)
        if not self.training:
            mask = torch.zeros_like(scores, dtype=torch.bool)
            if self.empties_rows:
                mask |= (x[:, :1] == 0)  # every class masked for these samples
            scores = scores.masked_fill(mask, float("-inf"))
        return scores


def _run(tmp_path, empties_rows):
    L.seed_everything(0)
    x, y = digits(600)
    t = trainer(tmp_path, [NonFiniteSentinel(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(MaskedInEval(empties_rows), loader(x[:400], y[:400], 64), loader(x[400:], y[400:], 100, False))
    return read_report(t.log_dir)


def test_nan_validation_loss_with_finite_training_fires(tmp_path):
    (finding,) = serious(_run(tmp_path, True), "non-finite")
    assert finding["severity"] == "error" and finding["data"]["kind"] == "validation"
    assert "validation only" in finding["message"] and finding["data"]["epoch"] == 0
    assert "val_loss" in finding["data"]["metrics"]


def test_finite_validation_is_silent_and_counted(tmp_path):
    report = _run(tmp_path, False)
    assert serious(report) == []
    detail = {c["name"]: c for c in report["checks"]}["non-finite"]["detail"]
    assert "2 validation run(s) checked" in detail


def test_validation_watch_consumes_no_rng(tmp_path):
    L.seed_everything(0)
    _run(tmp_path, True)
    after_run = torch.rand(1)
    L.seed_everything(0)
    x, y = digits(600)
    t = trainer(tmp_path / "bare", [], logger=None, max_epochs=2)
    t.fit(MaskedInEval(True), loader(x[:400], y[:400], 64), loader(x[400:], y[400:], 100, False))
    assert torch.equal(after_run, torch.rand(1))
