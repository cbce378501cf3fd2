"""lr-schedule's schedulers driven the wrong way, on real Trainer runs: a ReduceLROnPlateau whose mode contradicts
its metric (mode="min" on an accuracy, mode="max" on a loss) and, under manual optimization, a scheduler never
stepped; plateaus in the right mode, genuine plateaus and schedulers stepped by hand stay silent."""

import lightning as L
import pytest
import torch
from helpers import Classifier, fit, read_report, serious

from lightning_sanity.callbacks.loss_dynamics import LossDynamics
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.scheduler_use import judge_never_stepped, judge_plateau_mode, metric_direction

pytestmark = pytest.mark.usefixtures("one_thread")
S = torch.optim.lr_scheduler


def _run(model, tmp_path, max_epochs=4, **kwargs):
    L.seed_everything(0)
    trainer = fit(model, tmp_path, callbacks=[LossDynamics(), SanitySummary(print_summary=False)],
                  max_epochs=max_epochs, **kwargs)
    return read_report(trainer.log_dir)


def _lr_findings(report):
    return [f for f in report["findings"] if f["check"] == "lr-schedule"]


class PlateauClassifier(Classifier):
    """SGD on digits logging val_loss and the accuracy (as ``accuracy``), the rate driven by
    ReduceLROnPlateau(mode) on ``monitor``."""

    def __init__(self, monitor, mode, lr=0.05, patience=0, accuracy="val_acc"):
        super().__init__(lr=lr, optimizer="sgd")
        self.monitor, self.mode, self.patience, self.accuracy = monitor, mode, patience, accuracy
        self.accuracies = []

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss_fn(logits, y))
        self.log(self.accuracy, (logits.argmax(1) == y).float().mean())

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.accuracies.append(float(self.trainer.callback_metrics[self.accuracy]))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        sched = S.ReduceLROnPlateau(opt, mode=self.mode, factor=0.3, patience=self.patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": self.monitor}}


def test_plateau_in_min_mode_on_accuracy_fires(tmp_path):
    model = PlateauClassifier("val_acc", "min")
    (finding,) = serious(_run(model, tmp_path), "lr-schedule")
    data = finding["data"]
    assert data["pattern"] == "plateau-mode" and finding["where"] == "optimizers[0]"
    assert data["mode"] == "min" and data["expected_mode"] == "max" and data["cuts_at_best"] >= 1
    # the metric each step used is the one validation logged that epoch
    assert data["first_metric"] == pytest.approx(model.accuracies[0])
    assert data["last_metric"] == pytest.approx(model.accuracies[-1])


def test_plateau_in_max_mode_on_loss_is_one_finding(tmp_path):
    (finding,) = serious(_run(PlateauClassifier("val_loss", "max"), tmp_path), "lr-schedule")
    assert finding["data"]["pattern"] == "plateau-mode" and finding["data"]["expected_mode"] == "min"


@pytest.mark.parametrize("monitor,mode,lr", [
    ("val_acc", "max", 0.05),
    ("val_loss", "min", 0.05),
    # a genuine plateau: a rate too small to move the metric, cut again and again, in the right mode
    ("val_loss", "min", 1e-7),
    # a name that does not say its direction: nothing to judge
    ("val_score", "min", 0.05),
])
def test_plateau_in_the_right_mode_is_silent(tmp_path, monitor, mode, lr):
    model = PlateauClassifier(monitor, mode, lr=lr, accuracy="val_score" if monitor == "val_score" else "val_acc")
    report = _run(model, tmp_path)
    assert not _lr_findings(report), report["findings"]
    if lr == 1e-7:  # the scheduler did cut the rate: the silence is a judgement, not an idle scheduler
        assert model.trainer.optimizers[0].param_groups[0]["lr"] < 1e-7


def test_metric_direction_from_names():
    assert [metric_direction(n) for n in ("val_f1", "val/acc", "valAcc", "val_mAP@0.5", "val_r2", "top1_acc",
                                          "val_dice_coef", "test_auroc")] == ["max"] * 8
    assert [metric_direction(n) for n in ("val_loss", "val/mse", "valLoss", "val_wer", "train_nll")] == ["min"] * 5
    assert [metric_direction(n) for n in ("val_score", "val_neg_loss", "acc_gap", "val_f1_loss", None, "")] == [
        None] * 6


def test_plateau_mode_needs_a_cut_at_an_improvement_to_warn():
    # mode "min" on an accuracy that fell: the cuts are not at an improvement; the inverted mode is still named
    verdict = judge_plateau_mode("val_acc", "min", [(None, 1.0), (0.9, 1.0), (0.8, 1.0), (0.7, 0.3)], "opt")
    assert verdict.kind == "plateau-mode" and verdict.severity == "info"
    assert judge_plateau_mode("val_acc", "max", [(None, 1.0), (0.5, 1.0), (0.6, 0.3)], "opt") is None


class ManualWithScheduler(Classifier):
    """Manual optimization on digits with the scheduler ``make(opt)``, stepped each batch, each epoch or never."""

    def __init__(self, make, stepped=None):
        super().__init__(lr=0.05, optimizer="sgd")
        self.automatic_optimization = False
        self.make, self.stepped = make, stepped

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        loss = self.loss_fn(self(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        if self.stepped == "step":
            self.lr_schedulers().step()
        return loss.detach()

    def on_train_epoch_end(self):
        if self.stepped == "epoch":
            self.lr_schedulers().step()

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return [opt], [{"scheduler": self.make(opt), "interval": "step"}]


def _warmup(opt, steps=100):
    return S.LambdaLR(opt, lambda s: min(1.0, (s + 1) / steps))


def test_manual_warmup_never_stepped_fires(tmp_path):
    (finding,) = serious(_run(ManualWithScheduler(_warmup), tmp_path, max_epochs=3), "lr-schedule")
    data = finding["data"]
    assert data["pattern"] == "never-stepped" and finding["where"] == "optimizers[0]"
    assert data["scheduler"] == "LambdaLR" and data["ratio"] == pytest.approx(0.01) and data["epochs"] == 3


def test_manual_decay_never_stepped_is_an_info(tmp_path):
    found = _lr_findings(_run(ManualWithScheduler(lambda opt: S.StepLR(opt, 1, 0.5)), tmp_path, max_epochs=3))
    assert [(f["severity"], f["data"]["pattern"]) for f in found] == [("info", "never-stepped")]


@pytest.mark.parametrize("make,stepped", [
    (lambda opt: _warmup(opt, 20), "step"),
    (lambda opt: S.StepLR(opt, 1, 0.5), "epoch"),
    (lambda opt: S.ConstantLR(opt, factor=1.0), None),
    (lambda opt: S.LambdaLR(opt, lambda s: 1.0), None),
    (lambda opt: S.LambdaLR(opt, lambda s: 0.05), None),  # a constant scale by design, below the base rate
])
def test_manual_schedulers_stepped_or_constant_are_silent(tmp_path, make, stepped):
    report = _run(ManualWithScheduler(make, stepped), tmp_path, max_epochs=3)
    assert not _lr_findings(report), report["findings"]


def test_one_epoch_runs_are_not_judged_unstepped(tmp_path):
    # manual: one epoch is too short to tell; automatic: Lightning steps an epoch-interval warm-up at the epoch's end
    assert not _lr_findings(_run(ManualWithScheduler(_warmup), tmp_path / "manual", max_epochs=1))
    auto = Classifier(lr=0.05, optimizer="sgd")
    auto.configure_optimizers = lambda: (
        lambda opt: ([opt], [{"scheduler": S.LambdaLR(opt, lambda e: min(1.0, (e + 1) / 20)), "interval": "epoch"}])
    )(torch.optim.SGD(auto.parameters(), lr=0.05))
    assert not serious(_run(auto, tmp_path / "auto", max_epochs=1), "lr-schedule")


def test_never_stepped_judgement_on_figures():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    warm = _warmup(opt)
    assert judge_never_stepped(warm, "opt", lr=1e-3, base_lr=0.1, epochs=1, batches=500) is None
    assert judge_never_stepped(warm, "opt", lr=1e-3, base_lr=0.1, epochs=2, batches=500).severity == "warning"
    assert judge_never_stepped(S.ConstantLR(opt, factor=1.0), "opt", lr=0.1, base_lr=0.1, epochs=5,
                               batches=500) is None
