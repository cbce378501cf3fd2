"""loss-trend with a target made by the model: a TD(0) value function regressed onto ``r + gamma * V_target(s')``
from a Polyak-averaged target network is not judged against its first level (info only), while a student that
cannot learn from a frozen teacher (a target that never moves) still fires."""

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit, loader, read_report, serious
from torch import nn

from lightning_sanity.callbacks.loss_dynamics import LossDynamics
from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary

pytestmark = pytest.mark.usefixtures("one_thread")


def _chain(n: int = 1024, seed: int = 0):
    """Transitions of a random walk on [-1, 1] with reward 1 per step: (s, r, s', done)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, 2, generator=g) * 2 - 1
    s2 = (s + 0.1 * torch.randn(n, 2, generator=g)).clamp(-1, 1)
    done = (torch.rand(n, generator=g) < 0.02).float()
    return s, torch.ones(n), s2, done


class TDValue(L.LightningModule):
    def __init__(self, tau: float = 0.05, zero_inputs: bool = False) -> None:
        super().__init__()
        self.v = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
        self.v_target = copy.deepcopy(self.v).requires_grad_(False)
        self.tau, self.zero_inputs = tau, zero_inputs

    def forward(self, s):
        return self.v(s * 0 if self.zero_inputs else s).squeeze(-1)

    def training_step(self, batch, batch_idx):
        s, r, s2, done = batch
        with torch.no_grad():
            target = r + 0.9 * (1 - done) * self.v_target(s2).squeeze(-1)
        return F.smooth_l1_loss(self(s), target)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.tau:
            with torch.no_grad():
                for p, p_t in zip(self.v.parameters(), self.v_target.parameters()):
                    p_t.lerp_(p, self.tau)

    def configure_optimizers(self):
        return torch.optim.Adam(self.v.parameters(), lr=3e-3)


def _run(model, tmp_path, data, batch_size=64):
    L.seed_everything(0)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=batch_size, shuffle=True)
    trainer = fit(model, tmp_path, train, None, callbacks=[LossInspector(), LossDynamics(),
                                                            SanitySummary(print_summary=False)], max_epochs=8)
    return read_report(trainer.log_dir)


def test_td_target_network_is_not_judged_against_its_first_level(tmp_path):
    report = _run(TDValue(), tmp_path, _chain())
    assert not serious(report, "loss-trend"), report["findings"]
    # The values grow from 0 towards 1 / (1 - gamma): the loss rises with its targets, which is said as information.
    found = [f for f in report["findings"] if f["check"] == "loss-trend"]
    assert found and all(f["data"].get("moving_target") for f in found), found


class Distilled(L.LightningModule):
    """A student regressed onto a frozen random teacher's outputs; ``zero_inputs`` blinds the student."""

    def __init__(self, zero_inputs: bool) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.teacher = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1)).requires_grad_(False)
        self.student = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
        self.zero_inputs = zero_inputs

    def training_step(self, batch, batch_idx):
        (x,) = batch
        with torch.no_grad():
            target = self.teacher(x)
        return F.mse_loss(self.student(x * 0 if self.zero_inputs else x), target)

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=3e-3)


def test_blind_student_of_a_frozen_teacher_still_fires(tmp_path):
    # Large batches: the first batch's estimate of the best constant's loss is then within a few percent.
    x = torch.randn(4096, 10, generator=torch.Generator().manual_seed(0))
    report = _run(Distilled(zero_inputs=True), tmp_path, (x,), batch_size=512)
    found = serious(report, "loss-trend")
    assert found and found[0]["data"]["pattern"] in ("baseline", "flat"), report["findings"]
    assert not found[0]["data"].get("moving_target")


def test_seeing_student_of_a_frozen_teacher_is_silent(tmp_path):
    x = torch.randn(4096, 10, generator=torch.Generator().manual_seed(0))
    report = _run(Distilled(zero_inputs=False), tmp_path, (x,), batch_size=512)
    assert not serious(report, "loss-trend"), report["findings"]
