"""Strided per-step measurements (lightning_sanity/stride.py): a dense window at the start, then a stride that the
measured cost sets; the norm monitor's judgements still work on the strided series."""

import time

import lightning as L
from _models_norms import Encoded
from helpers import Classifier, digits, fit, loader, read_report, serious

from lightning_sanity.callbacks.activations import ActivationMonitor
from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.stride import DENSE_MAX, DENSE_MIN, MAX_STRIDE, StepStride


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_dense_window_follows_the_planned_run():
    assert StepStride(planned=None).dense == DENSE_MIN
    assert StepStride(planned=200).dense == DENSE_MIN
    assert StepStride(planned=2_000).dense == 100
    assert StepStride(planned=20_000).dense == DENSE_MAX


def test_stride_follows_the_measured_cost():
    stride = StepStride(planned=100)
    for step in range(stride.dense):
        assert stride.measure(step)
        if step >= stride.dense // 2:
            stride.charge(0.001)  # 1 ms of strided work per step, with steps of about 1 ms: far over the budget
            _busy(0.001)
    measured = [s for s in range(stride.dense, stride.dense + 64) if stride.measure(s)]
    assert stride.stride == MAX_STRIDE and len(measured) == 64 // MAX_STRIDE

    cheap = StepStride(planned=100)
    for step in range(cheap.dense):
        cheap.measure(step)
        _busy(0.0005)  # no strided work charged: every step stays measured
    assert cheap.stride == 1 and all(cheap.measure(s) for s in range(cheap.dense, cheap.dense + 10))


def _run(model, tmp_path):
    L.seed_everything(0)
    monitor = NormMonitor()
    x, y = digits()
    # A budget this small makes every measurement too expensive: the longest stride after the dense window.
    callbacks = [monitor, ActivationMonitor(), SanitySummary(print_summary=False, periodic_budget=1e-6)]
    t = fit(model, tmp_path, train=loader(x, y, batch_size=16), val=loader(x[:64], y[:64], batch_size=16, shuffle=False),
            callbacks=callbacks, max_steps=120, max_epochs=1, log_every_n_steps=50)
    return read_report(t.log_dir), monitor


def test_strided_gradient_norms_still_judge(tmp_path):
    report, monitor = _run(Encoded(mode="detach"), tmp_path)
    steps = [m[0] for m in monitor._history.meta]
    assert steps[:DENSE_MIN] == list(range(DENSE_MIN))  # the dense window: every step
    later = steps[DENSE_MIN:]
    assert later and len(later) < 120 - DENSE_MIN  # strided afterwards ...
    assert all(s % MAX_STRIDE == 0 or (s + 1) % monitor._meter.every == 0 for s in later)  # ... and logging steps
    (finding,) = serious(report, "dead-gradient")
    assert finding["where"] == "encoder" and finding["global_step"] == 0


def test_strided_healthy_run_stays_silent(tmp_path):
    report, _ = _run(Classifier(), tmp_path)
    assert not serious(report), [f["message"] for f in serious(report)]


def test_whole_run_judgements_find_the_middle_by_step():
    import torch

    from lightning_sanity.checks.weight_drift import steady_growth

    steps = list(range(50)) + list(range(50, 401, 8))  # a dense window, then 1 step in 8
    t = torch.tensor(steps, dtype=torch.float64)
    healthy = (1 + 0.3 * t.sqrt()).unsqueeze(1).repeat(1, 2) ** 2  # 7x over the run, slowing down like sqrt(t)
    assert steady_growth(healthy, [64, 64]) != []  # read as evenly spaced rows, the dense start looks linear
    assert steady_growth(healthy, [64, 64], steps=steps) == []
    linear = (1 + 0.02 * t).unsqueeze(1).repeat(1, 2) ** 2
    assert steady_growth(linear, [64, 64], steps=steps) != []
