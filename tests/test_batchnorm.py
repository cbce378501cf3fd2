"""batchnorm-variance: a BatchNorm layer's running variance blowing up, a bad-luck batch, a collapse."""

import lightning as L
import pytest
import torch
from _models_nonfinite import BadBatchLoader, BNClassifier
from helpers import digits_loaders, events, read_report, serious, trainer
from torch import nn

import lightning_sanity
from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.batchnorm import BatchNormMonitor
from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel
from lightning_sanity.checks import batchnorm as bn
from lightning_sanity.checks import batchnorm_momentum as bn_momentum

# --------------------------------------------------------------------------- pure functions


def _t(*values):
    return torch.tensor([float(v) for v in values])


def _judge(before, after, *, window_ref=None, peak=None, tracked=100, delta=1, momentum=0.1, eps=1e-5,
           reference=None, count=None):
    n = len(before)
    return bn.judge(
        _t(*before), _t(*after), _t(*(window_ref or before)), _t(*(peak or before)), _t(*[momentum] * n), _t(*[tracked] * n),
        _t(*[delta] * n), _t(*[bn.warmup_steps(momentum)] * n), _t(*[eps] * n), reference, count,
    )


def test_warmup_steps_follow_the_momentum():
    assert bn.warmup_steps(0.1) == 44  # 0.9 ** 44 < 1% of the initial 1.0 left
    assert 0.9**44 < 0.01 <= 0.9**43
    assert bn.warmup_steps(0.5) == 7 and bn.warmup_steps(None) == 10 and bn.warmup_steps(1.0) == 1
    assert bn.warmup_steps(0.0) > 10**9


def test_batch_variance_is_recovered_from_the_running_update():
    layer = nn.BatchNorm1d(4, momentum=0.1).train()
    x = torch.randn(64, 4) * torch.tensor([1.0, 2.0, 3.0, 0.5])
    before = layer.running_var.mean().reshape(1)
    layer(x)
    recovered = bn.batch_variance_mean(before, layer.running_var.mean().reshape(1), _t(0.1))
    assert torch.allclose(recovered, x.var(0, unbiased=True).mean().reshape(1), rtol=1e-5)
    # momentum=None: the update weight is 1 / num_batches_tracked
    assert bn.effective_momentum(_t(float("nan"), 0.1), _t(4, 4)).tolist() == pytest.approx([0.25, 0.1])


def test_each_criterion_fires_on_its_own_symptom():
    healthy = _judge([1.0, 0.5], [1.05, 0.48])
    assert not healthy["alarm"].any()
    bad_batch = _judge([1.0], [0.9 + 0.1 * 5000.0])  # batch variance 5000x the estimate
    assert bad_batch["fired_batch"].all() and bad_batch["fired_jump"].all()
    assert bad_batch["batch_ratio"].item() == pytest.approx(5000.0)
    modest_batch = _judge([1.0], [0.9 + 0.1 * 150.0])  # 150x: a bad batch, the estimate only x15.9
    assert modest_batch["fired_batch"].all() and not modest_batch["fired_jump"].any()
    window = _judge([10.0], [12.0], window_ref=[0.005], tracked=200)
    assert window["fired_window"].all() and not window["fired_jump"].any()
    collapse = _judge([2e-4], [1e-4], peak=[0.5])
    assert collapse["fired_collapse"].all()
    nonfinite = _judge([1.0], [float("inf")])
    assert nonfinite["fired_nonfinite"].all() and not nonfinite["fired_jump"].any()


def test_no_verdict_during_warm_up_or_without_an_update():
    assert not _judge([1.0], [500.0], tracked=10)["alarm"].any()  # the estimate is still leaving its initial 1.0
    assert not _judge([1.0], [500.0], delta=0)["alarm"].any()  # eval mode: the statistics did not move


def test_during_warm_up_a_batch_is_judged_against_earlier_batches():
    history = _t(0.9, 1.1, 5000.0, 1.0, 1.0, 0.95, float("nan")).reshape(7, 1)  # an earlier bad batch among healthy ones
    reference, count = bn.batch_reference(history)
    assert reference.item() == pytest.approx(1.075) and count.item() == 6  # upper quartile: the 5000 is ignored
    # Step 10 at momentum 0.1: the running estimate is still mostly its initial 1.0 (whatever the data's scale).
    bad = _judge([1.0], [0.9 + 0.1 * 2000.0], tracked=10, reference=reference, count=count)
    assert bad["fired_batch_early"].all() and bad["fired_batch"].all() and not bad["fired_jump"].any()
    assert bad["reference_ratio"].item() == pytest.approx(2000.0 / 1.075, rel=1e-4)
    # A healthy batch a few times the reference, too few batches known, or a reference at noise level: silent.
    assert not _judge([1.0], [0.9 + 0.1 * 8.0], tracked=10, reference=reference, count=count)["alarm"].any()
    assert not _judge([1.0], [0.9 + 0.1 * 2000.0], tracked=10, reference=reference, count=_t(4))["alarm"].any()
    assert not _judge([1.0], [0.9 + 0.1 * 2000.0], tracked=10, reference=_t(1e-7), count=count)["alarm"].any()
    # After warm-up the running estimate is the reference again (the quantile is not consulted).
    assert not _judge([1.0], [0.9 + 0.1 * 50.0], tracked=100, reference=_t(0.01), count=count)["alarm"].any()


def test_constant_channels_do_not_make_huge_ratios():
    # A channel whose input never varies has variance ~0; one sample touching it must not look like a blow-up.
    out = _judge([1e-9], [0.9e-9 + 0.1 * 1e-4])
    assert out["batch_ratio"].item() < 10 and not out["alarm"].any()


@pytest.mark.parametrize("momentum", [0.1, 0.01, 0.6])
def test_the_screen_flags_every_step_the_full_verdict_flags(momentum):
    # After warm-up the monitor runs the cheap screen and the full verdict only on flagged steps: the screen
    # must be a superset. Random steps across many orders of magnitude, NaN and Inf included.
    gen = torch.Generator().manual_seed(0)
    n, eps = 4096, 1e-5
    scale = lambda: 10 ** (torch.rand(n, generator=gen) * 12 - 8)  # noqa: E731
    before, after, window_ref, peak = scale(), scale(), scale(), scale()
    after[::97], after[::89], before[::83] = float("nan"), float("inf"), float("nan")
    armed = torch.rand(n, generator=gen) > 0.2
    const = lambda v: torch.full((n,), float(v))  # noqa: E731
    verdict = bn.judge(before, after, window_ref, peak, const(momentum), const(1000), const(1),
                       const(bn.warmup_steps(momentum)), const(eps))
    alarm = verdict["alarm"] & (armed | ~(verdict["fired_collapse"] | verdict["fired_nonfinite"]))
    assert 100 < int(alarm.sum()) < n - 100  # both kinds of steps are in the sample
    for i in torch.nonzero(alarm).flatten().tolist():
        one = lambda t: t[i:i + 1].tolist()  # noqa: E731
        assert bn.screen(one(before), one(after), one(window_ref), one(peak), one(armed), one(const(10 * eps)),
                         one(const(momentum)), one(const(100 * eps)))
    # and it stays quiet on a healthy step
    assert not bn.screen([1.0], [1.02], [0.9], [1.1], [True], [1e-4], [0.1], [1e-3])


def test_the_warm_up_screen_flags_every_bad_batch_and_keeps_the_full_verdicts_state():
    # During warm-up the monitor screens too (the full verdict ran on every one of a short run's steps): quiet
    # steps must leave exactly the state the full verdict leaves, and a batch far above the earlier ones is flagged.
    from lightning_sanity.callbacks._batchnorm_state import LayerState, StepFigures

    layers = [("a", nn.BatchNorm1d(4)), ("b", nn.BatchNorm1d(3, momentum=None)), ("c", nn.BatchNorm1d(2, momentum=0.5))]
    monitor = BatchNormMonitor()
    full = monitor._state = LayerState(layers)
    fast = LayerState(layers)
    gen = torch.Generator().manual_seed(0)
    mean, tracked = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    for k in range(40):
        delta = [1.0, 0.0 if k % 7 == 3 else 1.0, 2.0 if k % 5 == 1 else 1.0]
        after = list(mean)
        for i, (momentum, d) in enumerate(zip((0.1, None, 0.5), delta)):
            for j in range(int(d)):  # the running update of each forward, batches of variance 0.5-1.5
                m = momentum if momentum is not None else 1.0 / (tracked[i] + j + 1)
                after[i] = (1 - m) * after[i] + m * float(0.5 + torch.rand((), generator=gen))
        values = [m * n for m, n in zip(mean, full.numels)] + [a * n for a, n in zip(after, full.numels)]
        values += tracked + [t + d for t, d in zip(tracked, delta)]
        tracked = [t + d for t, d in zip(tracked, delta)]
        step = StepFigures(full, values, [], [])
        slot = k % bn.WINDOW
        if k == 0:
            full.ring = [list(step.mean_after) for _ in full.ring]
            fast.ring = [list(step.mean_after) for _ in fast.ring]
        assert not bn.screen(step.mean_before, step.mean_after, fast.ring[slot], fast.peak, fast.armed, fast.floor,
                             step.momentum, fast.collapse_level, reference_low=bn.reference_low(fast.batches))
        assert not monitor._verdict_of(step, slot, monitor._limits)
        fast.quiet_warmup_step(step, slot)
        full.calls += 1
        fast.calls += 1
        mean = after
    same = lambda x, y: all(a == b or (a != a and b != b) for a, b in zip(x, y))  # noqa: E731
    assert all(same(x, y) for x, y in zip(full.batches, fast.batches)) and full.peak == fast.peak
    assert all(same(x, y) for x, y in zip(full.ring, fast.ring))
    # A batch 200x the earlier ones, still in warm-up: the screen flags it.
    bad = [m * (0.9 + 0.1 * 200) for m in mean]
    values = [m * n for m, n in zip(mean, full.numels)] + [a * n for a, n in zip(bad, full.numels)]
    values += tracked + [t + 1 for t in tracked]
    step = StepFigures(full, values, [], [])
    assert bn.screen(step.mean_before, step.mean_after, fast.ring[0], fast.peak, fast.armed, fast.floor,
                     step.momentum, fast.collapse_level, reference_low=bn.reference_low(fast.batches))


def test_argument_validation():
    with pytest.raises(ValueError, match="batchnorm_scalars.*'yes'"):
        BatchNormMonitor(batchnorm_scalars="yes")


# --------------------------------------------------------------------------- real runs


def _fit(tmp_path, model, train, **kwargs):
    L.seed_everything(0, workers=True)
    callbacks = [NonFiniteSentinel(), BatchNormMonitor(), SanitySummary(print_summary=False)]
    settings = dict(max_epochs=3, limit_val_batches=0)
    settings.update(kwargs)
    t = trainer(tmp_path, callbacks, **settings)
    t.fit(model, train)
    return t, read_report(t.log_dir)


def test_bad_luck_batch_blows_up_the_running_variance(tmp_path):
    model = BNClassifier("mlp")
    data = BadBatchLoader(digits_loaders()[0], at=(3, 5), factor=1000.0)
    t, report = _fit(tmp_path, model, data, max_epochs=4, limit_train_batches=16)
    (finding,) = serious(report, "batchnorm-variance")
    assert finding["severity"] == "warning" and finding["where"] == "net.1"
    assert (finding["epoch"], finding["batch_idx"], finding["global_step"], finding["seed"]) == (3, 5, 53, 0)
    assert finding["data"]["batch_ratio"] > 1e5 and finding["data"]["jump"] > 1e4
    assert not serious(report, "non-finite")  # BatchNorm kept the loss finite: this is not a NaN
    assert finding["replay"] == "sanity/replay/step_53.pt"

    result = lightning_sanity.replay(f"{t.log_dir}/{finding['replay']}", BNClassifier("mlp"))
    assert result.reproduced and result.batchnorm["layer"] == "net.1" and result.batchnorm["batch_ratio"] > 1e5
    assert result.module is None  # nothing went non-finite
    # The bundle holds the step exactly as it ran: the replayed loss is the training loss, bit for bit.
    assert result.loss == model.seen[(3, 5)]

    tags = events(t.log_dir).Tags()["scalars"]
    for quantity in ("bn_running_var_mean", "bn_running_var_max", "bn_batch_ratio"):
        assert f"sanity/{quantity}/net.1" in tags


def test_bad_luck_batch_long_after_warm_up_is_caught_by_the_screen(tmp_path):
    # Global step 95: the monitor runs its cheap screen by then (from step 69 at momentum 0.1).
    data = BadBatchLoader(digits_loaders()[0], at=(4, 15), factor=1000.0)
    t, report = _fit(tmp_path, BNClassifier("cnn"), data, max_epochs=5, limit_train_batches=20)
    (finding,) = serious(report, "batchnorm-variance")
    assert (finding["epoch"], finding["batch_idx"], finding["global_step"]) == (4, 15, 95)
    assert finding["data"]["criterion"] in ("jump", "batch") and finding["data"]["batch_ratio"] > 1e3
    assert finding["replay"] == "sanity/replay/step_95.pt"
    result = lightning_sanity.replay(f"{t.log_dir}/{finding['replay']}", BNClassifier("cnn"))
    assert result.reproduced and result.batchnorm["layer"] == finding["where"]


def test_bad_batch_during_warm_up_is_named(tmp_path):
    # Global steps 5 and 25, long before the 44-step warm-up of momentum 0.1: judged against earlier batches.
    data = BadBatchLoader(digits_loaders()[0], at=(0, 5), factor=1000.0)
    data2 = BadBatchLoader(data, at=(1, 5), factor=1000.0)
    t, report = _fit(tmp_path, BNClassifier("cnn"), data2, max_epochs=2, limit_train_batches=20)
    findings = serious(report, "batchnorm-variance")
    assert findings and all(f["severity"] == "warning" and f["data"]["criterion"] == "batch" for f in findings)
    first = min(findings, key=lambda f: f["global_step"])
    assert (first["epoch"], first["batch_idx"], first["global_step"]) == (0, 5, 5)
    assert first["where"] == bn.batchnorm_layers(BNClassifier("cnn"))[0][0]
    assert first["data"]["reference_ratio"] > 1e4 and first["data"]["reference_batches"] == bn.REFERENCE_BATCHES
    assert {(f["epoch"], f["batch_idx"]) for f in findings} <= {(0, 5), (1, 5)}
    # The replay judges the bundle's batch against the same reference, and finds it again.
    result = lightning_sanity.replay(f"{t.log_dir}/{first['replay']}", BNClassifier("cnn"))
    assert result.reproduced and result.batchnorm["layer"] == first["where"]


def test_running_variance_collapse(tmp_path):
    # From epoch 1 on the inputs are all zero: the layer sees a constant and its running variance decays to 0.
    data = BadBatchLoader(digits_loaders()[0], at=(1, 0), factor=0.0, onwards=True)
    _, report = _fit(tmp_path, BNClassifier("mlp", momentum=0.5), data, max_epochs=2, limit_train_batches=20)
    (finding,) = serious(report, "batchnorm-variance")
    assert finding["where"] == "net.1" and finding["data"]["criterion"] == "collapse" and finding["epoch"] == 1


@pytest.mark.parametrize(("arch", "optimizer"), [("mlp", "sgd"), ("raw", "adam"), ("cnn", "sgd"), ("cnn", "adam"),
                                                  ("lazy", "adam")])
def test_healthy_batchnorm_networks_are_silent(tmp_path, arch, optimizer):
    # "raw" normalizes the raw digit pixels: several border pixels never vary (zero-variance channels).
    lr = 1e-2 if optimizer == "adam" else 5e-2
    t, report = _fit(tmp_path, BNClassifier(arch, optimizer, lr=lr), digits_loaders()[0], max_epochs=4,
                     limit_train_batches=22)
    assert t.global_step > bn.warmup_steps(0.1) + bn.WINDOW  # long enough to be judged, and screened
    assert not [f for f in report["findings"] if f["check"] in ("batchnorm-variance", "non-finite")]
    detail = {c["name"]: c["detail"] for c in report["checks"]}["batchnorm-variance"]
    assert "BatchNorm layers" in detail


def test_cumulative_average_batchnorm_is_silent(tmp_path):
    _, report = _fit(tmp_path, BNClassifier("mlp", momentum=None), digits_loaders()[0], max_epochs=2,
                     limit_train_batches=12)
    assert not [f for f in report["findings"] if f["check"] == "batchnorm-variance"]


def test_model_without_batchnorm_is_skipped_with_a_reason(tmp_path):
    from _models_nonfinite import SequenceClassifier

    _, report = _fit(tmp_path, SequenceClassifier(), digits_loaders()[0], max_epochs=1, limit_train_batches=2)
    check = {c["name"]: c for c in report["checks"]}["batchnorm-variance"]
    assert check["status"] == "skipped" and "no BatchNorm" in check["detail"]


# --------------------------------------------------------------------------- a momentum that follows single batches


def test_keras_momentum_copied_literally_is_named(tmp_path):
    # momentum=0.99 is Keras' weight of the OLD estimate; in PyTorch it is the new batch's.
    _, report = _fit(tmp_path, BNClassifier("mlp", momentum=0.99), digits_loaders(batch_size=16)[0], max_epochs=1,
                     limit_train_batches=14)
    (finding,) = serious(report, "batchnorm-variance")
    assert finding["where"] == "net.1" and finding["data"]["criterion"] == "momentum"
    assert finding["data"]["momentum"] == [0.99] and finding["data"]["averaged_batches"] == 1.02
    assert finding["data"]["median_step_move"]["net.1"] >= bn_momentum.MOVE_MIN
    assert "1 - keras_momentum" in finding["advice"]


@pytest.mark.parametrize("momentum", [0.01, 0.1, 0.5])
def test_ordinary_momenta_are_silent(tmp_path, momentum):
    # The same network and batches; 0.5 (the newest batch weighs as much as all earlier ones) is still an average.
    _, report = _fit(tmp_path, BNClassifier("mlp", momentum=momentum), digits_loaders(batch_size=16)[0],
                     max_epochs=1, limit_train_batches=14)
    assert serious(report, "batchnorm-variance") == []
