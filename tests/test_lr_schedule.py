"""lr-schedule from the whole trajectory and the schedulers' configuration, on real Trainer runs: repeated
collapse, a warm-up that never finishes and a group with lr 0 fire; healthy schedules of the same kinds stay
silent."""

import lightning as L
import pytest
import torch
from helpers import Classifier, fit, read_report, serious
from lightning.pytorch.callbacks import EarlyStopping, StochasticWeightAveraging

from lightning_sanity.callbacks.loss_dynamics import LossDynamics
from lightning_sanity.callbacks.summary import SanitySummary

pytestmark = pytest.mark.usefixtures("one_thread")
S = torch.optim.lr_scheduler


class WithSchedule(Classifier):
    """SGD on digits (23 batches per epoch) with the scheduler ``make(opt, total)`` and Lightning's ``interval``."""

    def __init__(self, make, interval="step", groups=None, **kwargs):
        super().__init__(lr=0.05, **kwargs)
        self.make, self.interval, self.groups = make, interval, groups

    def configure_optimizers(self):
        params = self.groups(self) if self.groups else self.parameters()
        opt = torch.optim.SGD(params, lr=self.lr, momentum=0.9)
        if self.make is None:
            return opt
        sched = self.make(opt, int(self.trainer.estimated_stepping_batches))
        return [opt], [{"scheduler": sched, "interval": self.interval}]


def _run(model, tmp_path, max_epochs=4, callbacks=(), **kwargs):
    L.seed_everything(0)
    trainer = fit(model, tmp_path, callbacks=[LossDynamics(), *callbacks, SanitySummary(print_summary=False)],
                  max_epochs=max_epochs, **kwargs)
    return read_report(trainer.log_dir)


def _pattern(report):
    found = serious(report, "lr-schedule")
    assert len(found) == 1, report["findings"]
    return found[0]["data"]["pattern"], found[0]


BUGS = {
    # T_max given in epochs (4) but stepped every batch: cycles every 8 batches
    "cosine_tmax_epochs_per_batch": (lambda opt, total: S.CosineAnnealingLR(opt, T_max=4), "step", "repeated"),
    # step_size_up meant in epochs, counted in batches
    "cyclic_step_size_2": (lambda opt, total: S.CyclicLR(opt, base_lr=1e-4, max_lr=0.05, step_size_up=2), "step",
                           "repeated"),
    # a warm-up of 500 batches on a 92-batch run
    "linear_warmup_too_long": (lambda opt, total: S.LinearLR(opt, start_factor=0.01, total_iters=500), "step",
                               "warmup"),
    # a LambdaLR warm-up of 10 epochs' batches (the run has 4)
    "lambda_warmup_too_long": (lambda opt, total: S.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 230)), "step",
                               "warmup"),
    # OneCycleLR sized for ten times the run: the peak is never reached
    "onecycle_total_steps_too_long": (lambda opt, total: S.OneCycleLR(opt, max_lr=0.05, total_steps=10 * total),
                                      "step", "warmup"),
    # a warm-up of 20 steps stepped once an epoch: the rate rises at each epoch's start and ends at 15 % of its base
    "lambda_warmup_in_steps_stepped_per_epoch": (lambda opt, total: S.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20)),
                                                 "epoch", "warmup"),
}


@pytest.mark.parametrize("name", list(BUGS))
def test_schedule_bugs_fire(tmp_path, name):
    make, interval, expected = BUGS[name]
    pattern, finding = _pattern(_run(WithSchedule(make, interval), tmp_path))
    assert pattern == expected, finding
    assert finding["where"] == "optimizers[0].param_groups[0]"


HEALTHY = {
    "onecycle_per_step": (lambda opt, total: S.OneCycleLR(opt, max_lr=0.05, total_steps=total), "step"),
    "cosine_per_epoch": (lambda opt, total: S.CosineAnnealingLR(opt, T_max=4), "epoch"),
    "cosine_per_step_sized": (lambda opt, total: S.CosineAnnealingLR(opt, T_max=total), "step"),
    "warmup_then_cosine": (lambda opt, total: S.SequentialLR(opt, [
        S.LinearLR(opt, start_factor=0.01, total_iters=10), S.CosineAnnealingLR(opt, T_max=total - 10)],
        milestones=[10]), "step"),
    "warm_restarts_per_epoch": (lambda opt, total: S.CosineAnnealingWarmRestarts(opt, T_0=2), "epoch"),
    "cyclic_in_batches": (lambda opt, total: S.CyclicLR(opt, base_lr=1e-4, max_lr=0.05, step_size_up=23), "step"),
    "steplr_per_epoch": (lambda opt, total: S.StepLR(opt, step_size=2, gamma=0.1), "epoch"),
    "plateau": (lambda opt, total: S.ReduceLROnPlateau(opt, factor=0.5, patience=0), "epoch"),
    # a warm-up of one epoch stepped per epoch, then constant at the base rate
    "lambda_warmup_per_epoch_then_constant": (lambda opt, total: S.LambdaLR(opt, lambda e: min(1.0, (e + 1) / 2)),
                                              "epoch"),
}


@pytest.mark.parametrize("name", list(HEALTHY))
def test_healthy_schedules_are_silent(tmp_path, name):
    make, interval = HEALTHY[name]
    model = WithSchedule(make, interval)
    if name == "plateau":
        model.configure_optimizers = lambda: _plateau(model)
    report = _run(model, tmp_path)
    assert not serious(report, "lr-schedule"), report["findings"]


def _plateau(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": S.ReduceLROnPlateau(opt, factor=0.5, patience=0),
                                               "monitor": "val_loss"}}


def test_swa_and_early_stopping_during_warmup_are_silent(tmp_path):
    # A warm-up over 60 % of the planned run, stopped early by EarlyStopping: judged against the planned run.
    warm = WithSchedule(lambda opt, total: S.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.6 * total))), "step")
    stop = EarlyStopping("val_loss", patience=0, min_delta=10.0)  # stops after the first validation
    assert not serious(_run(warm, tmp_path / "es", max_epochs=6, callbacks=[stop]), "lr-schedule")
    swa = WithSchedule(lambda opt, total: S.CosineAnnealingLR(opt, T_max=4), "epoch")
    report = _run(swa, tmp_path / "swa", callbacks=[StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2,
                                                                               annealing_epochs=3)])
    assert not serious(report, "lr-schedule"), report["findings"]


def _head_group(lr, trainable):
    def groups(model):
        head = model.net[2]
        head.requires_grad_(trainable)
        body = [p for n, p in model.named_parameters() if not n.startswith("net.2")]
        return [{"params": body}, {"params": list(head.parameters()), "lr": lr}]
    return groups


def test_group_with_lr_zero_and_trainable_parameters_is_named(tmp_path):
    pattern, finding = _pattern(_run(WithSchedule(None, groups=_head_group(0.0, True)), tmp_path, max_epochs=2))
    assert pattern == "zero"
    assert finding["where"] == "optimizers[0].param_groups[1]"
    assert finding["data"]["parameters"] == ["net.2.weight", "net.2.bias"]


def test_frozen_group_with_lr_zero_is_silent(tmp_path):
    report = _run(WithSchedule(None, groups=_head_group(0.0, False)), tmp_path, max_epochs=2)
    assert not serious(report, "lr-schedule"), report["findings"]


def test_update_ratio_names_the_group_with_lr_zero(tmp_path):
    from lightning_sanity.callbacks.norms import NormMonitor

    report = _run(WithSchedule(None, groups=_head_group(0.0, True)), tmp_path, max_epochs=2,
                  callbacks=[NormMonitor()])
    (finding,) = serious(report, "update-ratio")
    assert finding["data"]["kind"] == "too_small" and finding["data"]["layers"] == ["net.2"]
    assert finding["data"]["zero_lr_groups"] == ["param group 1 of SGD"]
    assert "learning rate is 0" in finding["message"]
    frozen = _run(WithSchedule(None, groups=_head_group(0.0, False)), tmp_path / "frozen", max_epochs=2,
                  callbacks=[NormMonitor()])
    assert not serious(frozen, "update-ratio"), frozen["findings"]


class WithBackbone(Classifier):
    """A backbone and a head, for Lightning's ``BackboneFinetuning``: the optimizer starts with the head only."""

    def __init__(self):
        super().__init__(lr=0.05)
        self.backbone = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU())
        self.net = torch.nn.Sequential(self.backbone, torch.nn.Linear(32, 10))

    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=self.lr, momentum=0.9)


def test_backbone_finetuning_ramp_that_meets_the_head_rate_late_is_silent(tmp_path):
    from lightning.pytorch.callbacks import BackboneFinetuning

    # The backbone's group is added at epoch 1 at a tenth of the head's rate and raised 1.2x an epoch until it meets
    # it, in the run's last epoch: a finished ramp, not a warm-up that never ends.
    unfreeze = BackboneFinetuning(unfreeze_backbone_at_epoch=1, lambda_func=lambda epoch: 1.2, verbose=False)
    report = _run(WithBackbone(), tmp_path, max_epochs=15, callbacks=[unfreeze], limit_train_batches=4)
    assert not serious(report, "lr-schedule"), report["findings"]


def test_warmup_too_long_over_two_equal_groups_still_fires(tmp_path):
    def groups(model):
        return [{"params": model.net[0].parameters()}, {"params": model.net[2].parameters()}]

    model = WithSchedule(lambda opt, total: S.LinearLR(opt, start_factor=0.01, total_iters=500), "step", groups=groups)
    found = serious(_run(model, tmp_path), "lr-schedule")
    assert {f["data"]["pattern"] for f in found} == {"warmup"} and len(found) == 2, found


def test_warmup_in_steps_stepped_per_epoch_over_two_groups_fires(tmp_path):
    # A warm-up of a tenth of the run's batches (HF's get_linear_schedule_with_warmup), stepped once an epoch: the
    # rate rises at the epochs' starts only, in both groups at once, and the run ends at 3/9 of its peak.
    def groups(model):
        return [{"params": model.net[0].parameters()}, {"params": model.net[2].parameters(), "weight_decay": 0.0}]

    def warmup(opt, total):
        return S.LambdaLR(opt, lambda s: min(1.0, s / max(1, total // 10)))

    found = serious(_run(WithSchedule(warmup, "epoch", groups=groups), tmp_path), "lr-schedule")
    assert {f["data"]["pattern"] for f in found} == {"warmup"} and len(found) == 2, found
