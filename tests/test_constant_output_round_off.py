"""constant-output at fit start when round-off amplified inside the network hides a constant output, in real Trainer
runs: a CNN whose pooled neck is `GroupNorm` with one channel per group (it outputs only its bias) fires, located
inside the neck; the same CNN with 8 channels per group, and a regressor whose large output bias leaves the input a
real but small share of the output, stay silent. A vanishing gradient in the collapsed run points at the collapse."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.checks.causes import link_to_constant_output
from lightning_sanity.findings import Finding


class PooledNeckCNN(L.LightningModule):
    def __init__(self, groups: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.neck = nn.GroupNorm(groups, 32)  # 32 groups: one channel over one value each
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.neck(self.body(x.view(-1, 1, 8, 8))).flatten(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class OffsetRegressor(L.LightningModule):
    """Targets around 5000: the output bias starts at their mean, so the input moves the output by ~1e-4 of it."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 1))
        with torch.no_grad():
            self.net[2].bias.fill_(5000.0)

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), 5000.0 + y.float())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _run(tmp_path, model):
    L.seed_everything(0)
    callbacks = [ModelChecks(), SanitySummary(print_summary=False)]
    t = fit(model, tmp_path, loader(*digits(256), batch_size=32), None, callbacks=callbacks, max_epochs=1,
            limit_train_batches=2, limit_val_batches=0, num_sanity_val_steps=0)
    return read_report(t.log_dir)


def test_a_norm_over_one_value_on_the_pooled_neck_fires(tmp_path):
    (finding,) = serious(_run(tmp_path, PooledNeckCNN(groups=32)), "constant-output")
    data = finding["data"]
    assert finding["severity"] == "error" and finding["where"] == "neck"
    assert data["output_spread"] > 1e-6 * data["output_scale"]  # above the float32 tolerance: round-off amplified
    assert data["float64_spread"] <= 1e-6 * data["output_scale"] and "GroupNorm" in finding["advice"]


@pytest.mark.parametrize("model", [lambda: PooledNeckCNN(groups=4), OffsetRegressor], ids=["GroupNorm(4)", "offset"])
def test_real_dependences_stay_silent(tmp_path, model):
    report = _run(tmp_path, model())
    assert serious(report, "constant-output") == []
    assert {c["name"]: c["status"] for c in report["checks"]}["constant-output"] == "pass"


def test_vanishing_gradients_point_at_a_constant_output():
    collapse = Finding("constant-output", "error", "Same output.", "Check the forward.", where="neck", key="constant",
                       global_step=0)
    vanishing = Finding("vanishing-gradient", "warning", "Gradients vanish.", "Check the init.")
    other = Finding("exploding-gradient", "warning", "Spikes.", "Clip.")
    link_to_constant_output([vanishing, collapse, other])
    assert vanishing.data["likely_cause"]["check"] == "constant-output" and "`neck`" in vanishing.advice
    assert other.advice == "Clip." and "likely_cause" not in other.data
