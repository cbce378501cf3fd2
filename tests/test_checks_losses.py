"""Unit tests of the pure functions behind initial-loss, loss-input, input-scale and label-distribution."""

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_sanity.callbacks._step_watch import StepWatch
from lightning_sanity.checks import data as D
from lightning_sanity.checks import duplicate_labels as DL
from lightning_sanity.checks import initial_loss as IL
from lightning_sanity.checks import loss_expectations as LE
from lightning_sanity.checks import losses as L


def _call(func, *args, **kwargs):
    return L.bind_loss_call(func, args, kwargs)


# --------------------------------------------------------------------------- recognising calls


def test_functional_and_module_forms_bind_to_the_same_call():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    seen = []
    watch = StepWatch(before=lambda f, a, k: seen.append(L.bind_loss_call(f, a, k)) if L.loss_kind(f) else None)
    watch.start()
    try:
        torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")(x, y)
        torch.nn.HuberLoss(delta=2.0)(x[:, 0], y.float())
    finally:
        watch.stop()
    assert [(c.kind, c.reduction) for c in seen] == [("cross_entropy", "sum"), ("huber", "mean")]
    assert seen[0].label_smoothing == 0.1 and seen[1].delta == 2.0
    assert L.bind_loss_call(torch.add, (x, x), {}) is None


def test_watch_removes_itself_under_a_mode_pushed_later():
    first, second = StepWatch().start(), StepWatch().start()
    first.stop()
    assert torch.overrides._get_current_function_mode_stack() == [second]
    second.stop()
    assert torch.overrides._get_current_function_mode_stack() == []


# --------------------------------------------------------------------------- expectations


@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_cross_entropy_expectations_match_the_real_loss(classes):
    target = torch.randint(0, classes, (512,), generator=torch.Generator().manual_seed(0))
    call = _call(F.cross_entropy, torch.zeros(512, classes), target)
    e = LE.expected_losses(call)
    assert e.uniform == pytest.approx(math.log(classes))
    # The best constant logits (the advised bias) reach the baseline exactly.
    best = torch.tensor(e.best_bias).expand(512, classes)
    assert F.cross_entropy(best, target).item() == pytest.approx(e.baseline, abs=1e-3)
    assert e.baseline <= e.uniform + 1e-9


def test_weighted_and_smoothed_cross_entropy_baselines():
    target = torch.tensor([0] * 90 + [1] * 10)
    weight = torch.tensor([1.0, 9.0])
    e = LE.expected_losses(_call(F.cross_entropy, torch.zeros(100, 2), target, weight=weight))
    assert e.prior == [0.5, 0.5] and e.baseline == pytest.approx(math.log(2))  # weights balance the classes
    smooth = LE.expected_losses(_call(F.cross_entropy, torch.zeros(100, 2), target, label_smoothing=0.2))
    best = torch.tensor(smooth.best_bias).expand(100, 2)
    assert F.cross_entropy(best, target, label_smoothing=0.2).item() == pytest.approx(smooth.baseline, abs=1e-3)


def test_binary_expectations_and_logit_bias():
    y = torch.tensor([1.0] * 10 + [0.0] * 90)
    e = LE.expected_losses(_call(F.binary_cross_entropy_with_logits, torch.zeros(100), y))
    assert e.uniform == pytest.approx(math.log(2))
    assert e.best_bias[0] == pytest.approx(math.log(0.1 / 0.9), abs=1e-3)
    best = torch.full((100,), e.best_bias[0])
    assert F.binary_cross_entropy_with_logits(best, y).item() == pytest.approx(e.baseline, abs=1e-3)
    weighted = LE.expected_losses(_call(F.binary_cross_entropy_with_logits, torch.zeros(100), y, pos_weight=torch.tensor(9.0)))
    assert weighted.best_bias[0] == pytest.approx(0.0, abs=1e-3)


def test_regression_expectations():
    y = torch.tensor([48.0, 50.0, 52.0, 50.0])
    mse = LE.expected_losses(_call(F.mse_loss, torch.zeros(4), y))
    assert mse.uniform == pytest.approx(float((y ** 2).mean())) and mse.baseline == pytest.approx(2.0)
    assert mse.best_bias == [50.0]
    l1 = LE.expected_losses(_call(F.l1_loss, torch.zeros(4), y))
    assert l1.best_bias == [50.0] and l1.baseline == pytest.approx(1.0)
    huber = LE.expected_losses(_call(F.huber_loss, torch.zeros(4), y, delta=1.0))
    assert huber.best_bias[0] == pytest.approx(50.0, abs=1e-2)
    assert LE.expected_losses(_call(F.mse_loss, torch.zeros(4, 1), y)) is None  # shapes differ: no expectation


def test_verdicts_on_healthy_and_broken_figures():
    ce = LE.LossExpectation(uniform=math.log(10), baseline=2.2, best_bias=[0.0] * 10)
    assert IL.initial_loss_verdict("cross_entropy", 2.45, ce) is None  # default init: slightly above ln C
    assert IL.initial_loss_verdict("cross_entropy", 13.0, ce) == "overconfident"
    assert IL.initial_loss_verdict("cross_entropy", float("nan"), ce) is None
    mse = LE.LossExpectation(uniform=2600.0, baseline=100.0, best_bias=[50.0])
    assert IL.initial_loss_verdict("mse", 2601.0, mse) == "offset"
    assert IL.initial_loss_verdict("mse", 150.0, mse) is None


def test_observed_loss_is_per_element_whatever_the_reduction():
    x, y = torch.randn(8, 3), torch.tensor([0, 1, 2, 0, 1, 2, -100, 0])
    mean = F.cross_entropy(x, y).item()
    for reduction in ("sum", "none"):
        call = _call(F.cross_entropy, x, y, reduction=reduction)
        assert LE.observed_loss(call, F.cross_entropy(x, y, reduction=reduction)) == pytest.approx(mean, rel=1e-5)


# --------------------------------------------------------------------------- what was fed


def test_probability_and_log_probability_rows():
    logits = torch.randn(16, 5)
    assert L.looks_like_probabilities(logits.softmax(-1))
    assert not L.looks_like_probabilities(logits)
    assert L.looks_like_log_probabilities(logits.log_softmax(-1))
    assert not L.looks_like_log_probabilities(logits)
    assert L.class_rows(torch.zeros(2, 5, 7)).shape == (14, 5)  # (N, C, T) -> rows of C


def test_shapes_and_class_indices():
    assert L.broadcast_grows((64, 1), (64,)) and not L.broadcast_grows((64, 3), (3,))
    assert L.broadcast_problem((4, 3), (4, 3)) is None
    assert L.class_index_problem(torch.tensor([0, 9, -100]), 10) is None
    assert L.class_index_problem(torch.tensor([0, 10, -1]), 10)["out_of_range"] == 2


def test_init_matches_prior():
    prior = [0.9, 0.1]
    assert LE.init_matches_prior(prior, torch.tensor([0.88, 0.12]), binary=False)
    assert not LE.init_matches_prior(prior, torch.tensor([0.5, 0.5]), binary=False)
    assert LE.init_matches_prior([0.1], torch.tensor([0.11]), binary=True)
    assert LE.init_matches_prior([0.5, 0.5], torch.tensor([0.5, 0.5]), binary=False)


# --------------------------------------------------------------------------- data


def test_input_stats_over_batches():
    stats = D.InputStats()
    x = torch.rand(32, 4)
    x[:, 0] = 0.0  # a blank border pixel
    stats.add(x)
    stats.add(torch.rand(32, 4) * torch.tensor([0.0, 1, 1, 1]))
    assert stats.samples == 64 and stats.constant_features == 1 and stats.nonfinite == 0
    assert D.scale_verdict(stats) is None
    raw = D.InputStats()
    raw.add(torch.rand(32, 4) * 255)
    assert D.scale_verdict(raw) == "large"
    tiny = D.InputStats()
    tiny.add(torch.rand(32, 4) / 255 / 255)
    assert D.scale_verdict(tiny) == "small"
    nan = D.InputStats()
    nan.add(torch.tensor([[1.0, float("nan")], [float("inf"), 2.0]]))
    assert nan.nonfinite == 2 and nan.rms == pytest.approx(math.sqrt(2.5))


def test_one_feature_in_the_hundreds_is_large():
    stats = D.InputStats()
    x = torch.randn(64, 30)
    x[:, 3] = x[:, 3] * 300 + 1000
    stats.add(x)
    assert D.scale_verdict(stats) == "large"


def test_identical_samples_within_a_batch():
    stats = D.InputStats()
    stats.add(torch.ones(8, 3))
    assert stats.identical_batches == 1


def test_label_balance_and_sorting():
    assert D.imbalance_ratio(torch.tensor([50, 50])) == 1.0
    assert D.heavy_imbalance(torch.tensor([300, 20])) and not D.heavy_imbalance(torch.tensor([9, 0, 1]))
    shuffled = torch.stack([D.label_counts(torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(i)), 10)
                            for i in range(4)])
    assert not D.looks_sorted(shuffled)
    ordered = torch.tensor([[64, 0, 0], [64, 0, 0], [10, 54, 0], [0, 20, 44]])
    assert D.looks_sorted(ordered)
    tiny_batches = torch.stack([D.label_counts(torch.randint(0, 50, (4,), generator=torch.Generator().manual_seed(i)), 50)
                                for i in range(4)])
    assert not D.looks_sorted(tiny_batches)


def test_conflicting_duplicates():
    x = torch.rand(6, 5)
    x[3] = x[0]
    x[4] = x[1]
    prints = DL.input_fingerprints(x)
    found = DL.duplicate_labels(prints, torch.tensor([0, 1, 2, 1, 1, 2]))
    assert (found.groups, found.involved, found.pairs, found.agreeing) == (1, 2, 2, 1)
    assert DL.duplicate_labels(prints, torch.tensor([0, 1, 2, 0, 1, 2])).groups == 0


def test_duplicate_fingerprints_are_exact_across_orders_of_magnitude():
    # Quiet power-spectrogram-like samples (1e-14..1e-6) next to loud ones (1e7): all distinct, none merged.
    g = torch.Generator().manual_seed(0)
    gain = 10 ** (8 * torch.rand(64, 1, generator=g) - 12)
    x = gain * torch.rand(64, 200, generator=g) ** 4
    x[0] *= 1e13
    assert DL.duplicate_labels(DL.input_fingerprints(x), torch.arange(64) % 4).groups == 0


def test_token_fingerprints_see_only_the_kept_tokens():
    ids = torch.tensor([[2, 7, 8, 0, 0], [2, 7, 8, 9, 0], [1, 1, 2, 7, 8], [2, 7, 8, 5, 5]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])
    f = DL.token_fingerprints(ids, mask)
    assert f[0] == f[2] == f[3] and f[0] != f[1]
    wider = DL.token_fingerprints(torch.cat([ids, torch.zeros(4, 3, dtype=torch.long)], 1),
                                  torch.cat([mask, torch.zeros(4, 3, dtype=torch.long)], 1))
    assert torch.equal(wider, f)  # the same texts padded to another batch length


def test_labels_of_identical_inputs_at_chance_or_informative():
    g = torch.Generator().manual_seed(0)
    prints = torch.cat([torch.zeros(40, dtype=torch.long), torch.arange(1, 89)])
    labels = torch.randint(0, 4, (128,), generator=g)
    assert DL.duplicate_labels(prints, labels).at_chance  # one shared input carrying labels at random
    mostly = labels.clone()
    mostly[:40] = torch.where(torch.rand(40, generator=g) < 0.85, 2, mostly[:40])
    found = DL.duplicate_labels(prints, mostly)
    assert found.groups == 1 and not found.at_chance  # an ambiguous but informative input
    pair = DL.duplicate_labels(torch.tensor([5, 5, 1, 2]), torch.tensor([0, 1, 0, 1]))
    assert pair.groups == 1 and not pair.at_chance  # one pair cannot tell chance from agreement


def test_bias_advice():
    assert D.logit_bias(0.5) == 0.0
    bias = D.log_prior_bias(torch.tensor([75, 25]))
    assert bias == [round(math.log(0.75), 3), round(math.log(0.25), 3)]
