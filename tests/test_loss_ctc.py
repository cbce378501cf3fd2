"""loss-input on ctc_loss in real Trainer runs: raw logits (no log_softmax) fire, targets holding the blank fire,
log_softmax output (functional and nn.CTCLoss) stays silent; initial-loss says the CTC baseline is unknown."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.checks.ctc import blank_in_targets, ctc_input_problem

T, S, C = 24, 5, 7  # frames, target symbols, classes (0 = blank)


def _data(blank_label=False):
    """Frames that carry their symbol (a noisy one-hot of it) over 4 frames each, blank frames in between."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(1, C, (128, S), generator=gen)
    if blank_label:
        y[:, 2] = 0  # labels encoded from 0 while the blank is 0 too
    frames = torch.zeros(128, T, dtype=torch.long)
    frames[:, :4 * S] = y.repeat_interleave(4, dim=1)
    x = F.one_hot(frames, C).float() + 0.3 * torch.randn(128, T, C, generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)


class CTCNet(L.LightningModule):
    def __init__(self, normalise=True, module=False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(C, 32), nn.ReLU(), nn.Linear(32, C))
        self.normalise, self.loss_fn = normalise, (nn.CTCLoss(blank=0) if module else None)

    def training_step(self, batch, batch_idx):
        x, y = batch
        scores = self.net(x)
        scores = scores.log_softmax(-1) if self.normalise else scores
        args = (scores.transpose(0, 1), y, torch.full((len(x),), T), torch.full((len(x),), S))
        return self.loss_fn(*args) if self.loss_fn is not None else F.ctc_loss(*args, blank=0)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _run(tmp_path, model, **data):
    L.seed_everything(0)
    return fit_report(tmp_path, model, _data(**data), my_callbacks(), max_epochs=1, limit_train_batches=2,
                      num_sanity_val_steps=0)


def test_ctc_fed_raw_logits_fires(tmp_path):
    (finding,) = serious(_run(tmp_path, CTCNet(normalise=False)), "loss-input")
    assert finding["severity"] == "error" and finding["data"]["kind"] == "logits"
    assert finding["data"]["max_abs_logsumexp"] > 0.5 and "log_softmax" in finding["advice"]


def test_ctc_targets_holding_the_blank_fire(tmp_path):
    (finding,) = serious(_run(tmp_path, CTCNet(), blank_label=True), "loss-input")
    assert finding["data"]["blank"] == 0 and finding["data"]["count"] > 0


@pytest.mark.parametrize("module", [False, True], ids=["functional", "nn.CTCLoss"])
def test_healthy_ctc_is_silent_and_its_baseline_is_said_unknown(tmp_path, module):
    report = _run(tmp_path, CTCNet(module=module))
    checks = {c["name"]: c for c in report["checks"]}
    assert serious(report) == []
    assert checks["loss-input"]["status"] == "pass" and "ctc_loss" in checks["loss-input"]["detail"]
    assert checks["initial-loss"]["status"] == "skipped" and "ctc_loss" in checks["initial-loss"]["detail"]


def test_ctc_judgements_on_tensors():
    raw = torch.randn(30, 3, 10)
    assert ctc_input_problem(raw.log_softmax(-1)) is None
    assert ctc_input_problem(raw.log_softmax(-1).bfloat16()) is None  # bf16 rounding is not a finding
    assert ctc_input_problem(raw.softmax(-1))["kind"] == "probabilities"
    # padding beyond each target's length may be the blank; 1-D concatenated targets are all symbols
    assert blank_in_targets(torch.tensor([[2, 3, 0, 0], [1, 0, 0, 0]]), torch.tensor([2, 1]), 0) is None
    assert blank_in_targets(torch.tensor([2, 3, 0, 1]), torch.tensor([2, 2]), 0)["count"] == 1
