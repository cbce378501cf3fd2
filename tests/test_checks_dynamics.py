"""The pure functions behind prediction and loss dynamics (lightning_sanity.checks.outputs, jitter, loss_trend,
lr_history and lightning_sanity.colormap), on tensors and lists, without a Trainer."""

import math
import random

import pytest
import torch

from lightning_sanity.checks import jitter, loss_trend, lr_history, outputs, verdict
from lightning_sanity import colormap


def _noisy(values, scale, seed=0):
    rng = random.Random(seed)
    return [v * (1 + rng.uniform(-scale, scale)) for v in values]


# --------------------------------------------------------------------------- reading outputs


@pytest.mark.parametrize(
    "shape, target, loss_kind, expected",
    [
        ((8, 10), torch.zeros(8, dtype=torch.long), None, "classification"),
        ((8,), torch.rand(8), None, "regression"),
        ((8, 1), torch.tensor([0.0, 1.0] * 4), None, "regression"),  # 0/1 targets, loss unknown
        ((8, 1), torch.tensor([0.0, 1.0] * 4), "bce_with_logits", "binary"),
        ((8, 3), torch.rand(8, 3), "mse", "regression"),
        ((8, 5), torch.rand(8, 5).round(), "binary_cross_entropy", "binary"),
        ((8, 6, 20), torch.zeros(8, 6, dtype=torch.long), "cross_entropy", "sequence"),
        ((8, 6, 1), torch.rand(8, 6, 1), None, "regression"),
        ((8, 4, 5, 5), torch.zeros(8, 5, 5, dtype=torch.long), None, "sequence"),
        # no class evidence (an autoencoder's bare batch, BCE on pixels): regression-like, never argmax classes
        ((8, 64), None, None, "regression"),
        ((8, 64), None, "binary_cross_entropy", "regression"),
        ((8, 10), None, "cross_entropy", "classification"),
        ((8, 10), torch.full((8,), 12), None, "regression"),  # integer targets beyond the output's width
        ((8, 1, 8, 8), None, "mse", "regression"),
        ((8, 6, 20), None, "cross_entropy", "sequence"),
    ],
)
def test_output_kind(shape, target, loss_kind, expected):
    assert outputs.output_kind(torch.zeros(shape), target, loss_kind) == expected


@pytest.mark.parametrize("planned, log_every, expected", [
    (120, 50, 5),  # aligned would give 2 snapshots: too few to judge jitter
    (230, 10, 10),  # 23 aligned snapshots: ride on logging steps
    (2000, 50, 50),
    (None, 50, 200),
    (float("inf"), 1, 200),
])
def test_snapshot_every(planned, log_every, expected):
    assert jitter.snapshot_every(planned, log_every) == expected


def test_output_kind_rejects_integer_outputs():
    assert outputs.output_kind(torch.zeros(4, 3, dtype=torch.long), None) is None


def test_probabilities_softmax_logits_and_keep_probabilities():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    probs = outputs.probabilities(logits, "classification")
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    assert torch.equal(outputs.probabilities(probs, "classification"), probs)
    # log-probabilities (the demo Transformer's output) give the same probabilities as the logits
    assert torch.allclose(outputs.probabilities(logits.log_softmax(-1), "classification"), probs)
    assert torch.allclose(outputs.probabilities(torch.zeros(3), "binary", "bce_with_logits"), torch.full((3, 1), 0.5))


def test_usable_targets_refuse_out_of_range_labels():
    probs = torch.full((3, 4), 0.25)
    assert outputs.usable_targets(torch.tensor([0, 1, 3]), "classification", probs) is not None
    assert outputs.usable_targets(torch.tensor([0, 1, 4]), "classification", probs) is None
    assert outputs.usable_targets(None, "classification", probs) is None


def test_sequence_true_class_probability_ignores_padding():
    probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8]]])
    target = torch.tensor([[0, -100]])
    assert outputs.true_class_probability(probs, target, "sequence").tolist() == pytest.approx([0.9])
    metrics = outputs.fixed_batch_metrics(probs, target, "sequence")
    assert metrics["accuracy"].item() == 1.0
    assert metrics["loss"].item() == pytest.approx(-math.log(0.9), rel=1e-5)


def test_fixed_batch_metrics_classification():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    m = outputs.fixed_batch_metrics(probs, torch.tensor([1, 0]), "classification")
    assert m["loss"].item() == pytest.approx(-(math.log(0.5) + math.log(0.9)) / 2, rel=1e-5)
    assert m["accuracy"].item() == pytest.approx(0.5)  # argmax of a tie is class 0


# --------------------------------------------------------------------------- change, constancy, agreement


def test_mean_change_is_total_variation_for_probabilities():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    assert jitter.mean_abs_change(a, b, "classification").item() == 1.0
    assert jitter.mean_abs_change(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]]), "regression").item() == 1.5


def test_flip_fraction_with_mask():
    prev, cur = torch.tensor([[0, 1, 2]]), torch.tensor([[1, 1, 0]])
    assert jitter.flip_fraction(prev, cur, mask=torch.tensor([[True, True, False]])).item() == 0.5


def test_constant_across_samples():
    assert outputs.is_constant_across_samples(torch.ones(5, 3) * 7)
    out = torch.ones(5, 3) * 1000
    out[2, 1] += 1e-3  # 1e-6 relative: float noise, still constant
    assert outputs.is_constant_across_samples(out)
    out[2, 1] += 1.0
    assert not outputs.is_constant_across_samples(out)
    assert not outputs.is_constant_across_samples(torch.ones(1, 3))  # one sample says nothing
    half = torch.ones(4, 2, dtype=torch.bfloat16)
    assert outputs.is_constant_across_samples(half)


def test_outputs_agree():
    a = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    assert outputs.outputs_agree(a, a.clone())
    assert not outputs.outputs_agree(a, a * 1.01)
    nan = a.clone()
    nan[0, 0] = float("nan")
    assert outputs.outputs_agree(nan, nan.clone())
    assert not outputs.outputs_agree(nan, a)


# --------------------------------------------------------------------------- judgements


def test_jitter_settling_run_is_silent_and_oscillation_fires():
    healthy = [0.9, 0.6, 0.4, 0.3, 0.2, 0.12, 0.1, 0.05, 0.08, 0.03, 0.02, 0.04]
    assert jitter.judge_jitter(healthy, measure="flips", progress=1.0, seen="all") is None
    bouncing = [0.9, 0.7, 0.5, 0.6, 0.8, 0.4, 0.7, 0.6, 0.5, 0.9, 0.6, 0.7]
    verdict = jitter.judge_jitter(bouncing, measure="flips", progress=1.0, seen="all of it")
    assert verdict.kind == "jitter" and verdict.data["late_median"] >= 0.3
    assert "3-10x" in verdict.advice and "all of it" in verdict.message


def test_jitter_is_not_judged_early_or_on_few_snapshots():
    bouncing = [0.7] * 12
    assert jitter.judge_jitter(bouncing, measure="flips", progress=0.3, seen="") is None
    assert jitter.judge_jitter([0.7] * 5, measure="flips", progress=1.0, seen="") is None


def test_jitter_moderate_flips_of_a_hard_task_are_silent():
    # A hard task keeps 10-25 % of samples near the boundary; below the 30 % threshold.
    hard = [0.5, 0.4, 0.3, 0.25, 0.2, 0.22, 0.18, 0.25, 0.2, 0.15, 0.22, 0.2]
    assert jitter.judge_jitter(hard, measure="flips", progress=1.0, seen="") is None


def test_loss_trend_healthy_shapes_are_silent():
    n = 200
    decay = [0.1 + 2.2 * math.exp(-i / 20) for i in range(n)]
    assert loss_trend.judge_loss_trend(decay, progress=1.0, seen="", baseline=2.3) == (None, None)
    # plateau at a good value late in the run
    plateau = [max(0.3, 2.3 - 0.05 * i) for i in range(n)]
    assert loss_trend.judge_loss_trend(_noisy(plateau, 0.2), progress=1.0, seen="", baseline=2.3) == (None, None)
    # heavy dropout: noisy, still coming down
    assert loss_trend.judge_loss_trend(_noisy(decay, 0.6), progress=1.0, seen="", baseline=2.3) == (None, None)
    # fine-tuning: starts low and stays low, far below the baseline
    fine = _noisy([0.08 - 0.00005 * i for i in range(n)], 0.3)
    assert loss_trend.judge_loss_trend(fine, progress=1.0, seen="", baseline=2.3) == (None, None)
    # still falling steadily, slowly: learning, not stuck
    slow = _noisy([2.3 - 0.0008 * i for i in range(n)], 0.01)
    assert loss_trend.judge_loss_trend(slow, progress=1.0, seen="", baseline=2.3) == (None, None)
    # a Gaussian NLL that goes negative and settles
    nll = [1.4 - 3.0 * (1 - math.exp(-i / 30)) for i in range(n)]
    assert loss_trend.judge_loss_trend(nll, progress=1.0, seen="") == (None, None)


def test_loss_trend_patterns():
    n = 100
    rising, _ = loss_trend.judge_loss_trend([2.3 * (1 + i / 20) for i in range(n)], progress=1.0, seen="")
    assert rising.kind == "rising"
    negative, _ = loss_trend.judge_loss_trend([2.3 - i for i in range(n)], progress=1.0, seen="", nonnegative=True)
    assert negative.kind == "negative"
    unbounded, _ = loss_trend.judge_loss_trend([2.3 - i ** 1.5 for i in range(n)], progress=1.0, seen="")
    assert unbounded.kind == "negative"
    flat, _ = loss_trend.judge_loss_trend(_noisy([2.3] * n, 0.02), progress=1.0, seen="", baseline=2.3)
    assert flat.kind == "flat"
    constant, _ = loss_trend.judge_loss_trend([0.0] * n, progress=1.0, seen="")
    assert constant.kind == "flat" and "exactly constant" in constant.message
    stuck = _noisy([2.0 + 0.3 * math.exp(-i / 5) for i in range(n)], 0.01)  # dips, then sits at the baseline
    baseline, _ = loss_trend.judge_loss_trend(stuck, progress=1.0, seen="", baseline=2.1)
    assert baseline.kind == "baseline"
    rng = random.Random(0)
    bouncing = [2.3] * 10 + [rng.choice([0.8, 1.2, 4.0, 6.0]) for _ in range(n)]
    oscillating, _ = loss_trend.judge_loss_trend(bouncing, progress=1.0, seen="")
    assert oscillating.kind == "oscillating" and "3-10x" in oscillating.advice


def test_loss_trend_a_short_slow_run_still_coming_down_is_not_stuck_at_the_baseline():
    # Two cautious epochs (Adam 1e-4, class weights): 2.31 -> 2.23 in noisy batches, near ln 10 at the end, but the
    # whole run ranks strongly downward: learning, only slowly.
    slow = _noisy([2.31 - 0.08 * i / 81 for i in range(82)], 0.03, seed=3)
    verdict, _ = loss_trend.judge_loss_trend(slow, progress=1.0, seen="", baseline=math.log(10))
    assert verdict is None
    # Shuffled labels memorised slowly: the same steady drift, but ending only ~1 % below the baseline.
    memorising = _noisy([2.31] * 10 + [2.30 - 0.035 * i / 90 for i in range(90)], 0.02, seed=3)
    verdict, _ = loss_trend.judge_loss_trend(memorising, progress=1.0, seen="", baseline=math.log(10))
    assert verdict.kind in ("flat", "baseline")


def test_loss_trend_baseline_message_claims_unused_inputs_only_when_stuck():
    stuck = _noisy([2.0 + 0.3 * math.exp(-i / 5) for i in range(100)], 0.01)
    verdict, _ = loss_trend.judge_loss_trend(stuck, progress=1.0, seen="", baseline=2.1)
    assert verdict.kind == "baseline" and "not using its inputs" in verdict.message
    verdict, _ = loss_trend.judge_loss_trend(stuck, progress=None, seen="", baseline=2.1)
    assert verdict.kind == "baseline" and "not using its inputs" not in verdict.message
    assert "may only be slow" in verdict.message


def test_loss_trend_waits_for_enough_of_the_run():
    verdict, reason = loss_trend.judge_loss_trend([2.3 + i for i in range(10)], progress=1.0, seen="")
    assert verdict is None and "too little" in reason
    verdict, reason = loss_trend.judge_loss_trend([2.3 + i for i in range(50)], progress=0.1, seen="10% seen")
    assert verdict is None and "10% seen" in reason
    # The baseline judgement needs a fair share of the plan: 28 % is not enough.
    stuck = _noisy([2.3] * 10 + [2.25] * 40, 0.01)
    verdict, _ = loss_trend.judge_loss_trend(stuck, progress=0.28, seen="", baseline=2.3)
    assert verdict is None or verdict.kind == "flat"


@pytest.mark.parametrize(
    "schedule, fires",
    [
        ([0.1 * 0.01 ** (s // 10) for s in range(100)], True),  # StepLR 100x every tenth of the run
        ([0.05 * (1 + math.cos(math.pi * s / 100)) for s in range(100)], False),  # cosine to 0 at the end
        ([0.1 * min(s / 20, (100 - s) / 80) for s in range(100)], False),  # warmup from 0, linear decay
        ([0.05 * (1 + math.cos(math.pi * (s % 25) / 25)) for s in range(100)], False),  # warm restarts
        ([0.1 * 0.9 ** s for s in range(100)], True),  # exponential decay sized for a longer run
    ],
)
def test_lr_history(schedule, fires):
    history = lr_history.LrHistory("param group 0 of optimizer 0 (SGD)")
    for step, lr in enumerate(schedule):
        history.update(lr, step=step, progress=step / len(schedule))
    verdict = history.judge(seen="")
    assert (verdict is not None) == fires
    if fires:
        assert verdict.data["collapsed_at_fraction"] < 0.5 and "param group 0" in verdict.message


def test_rank_correlation():
    assert verdict.rank_correlation([3.0, 1.0, 2.0]) == pytest.approx(-0.5)


# --------------------------------------------------------------------------- images


def test_colormap_ends_and_nan():
    img = colormap.colormap(torch.tensor([[0.0, 1.0, float("nan")]]))
    assert img.shape == (3, 1, 3)
    assert img[:, 0, 0].sum() < 0.7 < img[:, 0, 1].sum()  # dark violet .. bright yellow
    assert img[:, 0, 2].sum() == 0


def test_scatter_image_puts_a_perfect_fit_on_the_diagonal():
    x = torch.linspace(-1, 1, 32)
    img = colormap.scatter_image(x, x, size=32)
    bright = img.sum(0) > 1.2
    rows, cols = torch.nonzero(bright, as_tuple=True)
    assert len(rows) >= 16 and torch.all(rows + cols == 31)


def test_loss_bouncing_back_above_the_baseline_is_oscillating():
    from lightning_sanity.checks.loss_trend import judge_loss_trend

    calm = [2.3 * 0.9 ** i + 0.05 for i in range(30)] + [0.3 + 0.1 * (i % 3) for i in range(40)]
    assert judge_loss_trend(calm, progress=1.0, seen="all", baseline=2.2) == (None, None)
    bouncing = calm[:30] + [0.6 + (1.8 if i % 6 == 0 else 0.2 * (i % 3)) for i in range(40)]
    verdict, _ = judge_loss_trend(bouncing, progress=1.0, seen="all", baseline=2.2)
    assert verdict.kind == "oscillating" and verdict.data["late_above_baseline"] >= 4


def test_jitter_at_the_threshold_within_sampling_noise_is_silent():
    # SimCLR-style run on 24 fixed samples: late flips hover at 0.35, half a standard error (0.09 for a flip
    # fraction over 24 samples, the same samples at every snapshot) above the 0.3 threshold: no evidence.
    hovering = [0.6, 0.55, 0.6, 0.5, 0.35, 0.3, 0.4, 0.35, 0.33]
    assert jitter.judge_jitter(hovering, measure="flips", progress=1.0, seen="", predictions=None) is not None
    assert jitter.judge_jitter(hovering, measure="flips", progress=1.0, seen="", predictions=24) is None
    # The same flips over 1,000 predictions are measured well enough to count.
    assert jitter.judge_jitter(hovering, measure="flips", progress=1.0, seen="", predictions=1000) is not None
    # A learning rate that bounces keeps most predictions flipping: far past the margin at any size.
    bouncing = [0.9, 0.8, 0.9, 0.7, 0.8, 0.9, 0.75, 0.85, 0.8]
    assert jitter.judge_jitter(bouncing, measure="flips", progress=1.0, seen="", predictions=24) is not None
    # A GRU still learning on 36 fixed samples (seed sweep): late flips 0.39, within two standard errors (0.15) of
    # 0.3 however many snapshots the median is over; a bouncing learning rate flips 0.6-1.0 of them.
    gru = [0.81, 0.47, 0.03, 0.25, 0.53, 0.39, 0.42, 0.11, 0.39, 0.36]
    assert jitter.judge_jitter(gru, measure="flips", progress=1.0, seen="", predictions=36) is None
    assert jitter.judge_jitter([v + 0.25 for v in gru], measure="flips", progress=1.0, seen="",
                               predictions=36) is not None
