"""initial-loss and margin heads: logits edited with the target (ArcFace, CosFace) start above ln C by design."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary
from tests.helpers import digits_loaders, fit_report, serious


class MarginClassifier(L.LightningModule):
    """Embedding MLP and a cosine head; ``how`` edits the true class's logit: "arcface" (one_hot), "cosface"
    (scatter), or "none" (plain cosine logits times ``scale``, no margin)."""

    def __init__(self, how: str, scale: float = 16.0, margin: float = 0.5) -> None:
        super().__init__()
        self.how, self.scale, self.margin = how, scale, margin
        self.embed = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
        self.weight = nn.Parameter(torch.randn(10, 32) * 0.01)

    def training_step(self, batch, batch_idx):
        x, y = batch
        cosine = F.linear(F.normalize(self.embed(x)), F.normalize(self.weight))
        if self.how == "arcface":
            theta = torch.acos(cosine.clamp(-1 + 1e-6, 1 - 1e-6))
            one_hot = F.one_hot(y, 10).to(cosine.dtype)
            logits = one_hot * torch.cos(theta + self.margin) + (1 - one_hot) * cosine
        elif self.how == "cosface":
            logits = cosine.scatter_add(1, y[:, None], torch.full_like(cosine[:, :1], -self.margin))
        else:
            logits = cosine
        return F.cross_entropy(logits * self.scale, y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _report(tmp_path, model):
    train, _ = digits_loaders()
    return fit_report(tmp_path, model, train, [LossInspector(), SanitySummary(print_summary=False)], max_steps=3)


def _detail(report):
    return next(c for c in report["checks"] if c["name"] == "initial-loss")["detail"]


def test_arcface_head_starts_above_ln_c_without_a_warning(tmp_path):
    report = _report(tmp_path, MarginClassifier("arcface"))
    assert not serious(report, "initial-loss")
    assert "margin head" in _detail(report)
    start = float(_detail(report).split()[1])
    assert start > 2 * math.log(10) + 2  # far above ln C: the old verdict would have fired


def test_cosface_head_through_scatter_is_recognised(tmp_path):
    report = _report(tmp_path, MarginClassifier("cosface", scale=30.0, margin=0.4))
    assert not serious(report, "initial-loss")
    assert "margin head" in _detail(report)


def test_scaled_cosine_logits_without_a_margin_are_info(tmp_path):
    """The same cosine head scaled by 64 and no target edit (a NormFace-style cosine classifier): the logits' range
    is set by the scale, not by the weights, so the high start is info, not an overconfident init."""
    report = _report(tmp_path, MarginClassifier("none", scale=64.0))
    assert not serious(report, "initial-loss")
    (finding,) = [f for f in report["findings"] if f["check"] == "initial-loss"]
    assert finding["severity"] == "info" and finding["data"]["cosine_logits"]
    assert finding["data"]["initial_loss"] > 2 * math.log(10) + 2
    assert "scaled cosine" in _detail(report)


class LinearHead(MarginClassifier):
    """The twin: a plain linear head (no normalisation) whose weights start 300 times too large."""

    def __init__(self) -> None:
        super().__init__("none")
        self.head = nn.Linear(32, 10)
        with torch.no_grad():
            self.head.weight.mul_(300.0)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.head(self.embed(x)), y)


def test_a_linear_head_with_a_bad_init_still_warns(tmp_path):
    report = _report(tmp_path, LinearHead())
    (finding,) = serious(report, "initial-loss")
    assert "overconfident" in finding["message"] and "scaled cosine" not in _detail(report)
