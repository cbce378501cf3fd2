"""The loss-trend judgements against the input-independent baseline, on plain lists of floats."""

import math
import random

import pytest

from lightning_sanity.checks import loss_trend
from lightning_sanity.checks import loss_baseline as B

# Adam at lr=1.0 on digits (the quickstart's lr-too-high bug, 3 epochs) and the same model at lr=3e-3, as logged.
TOO_HIGH = [2.49, 30.30, 36.37, 24.17, 17.01, 8.09, 9.17, 11.68, 4.67, 4.31, 3.28, 7.02, 6.32, 7.31, 3.75, 4.90, 1.53,
            3.26, 2.06, 3.82, 2.87, 3.66, 3.01, 1.65, 2.22, 0.75, 2.72, 1.32, 2.44, 1.78, 1.33, 1.80, 1.66, 2.59, 1.27,
            0.81, 2.04, 1.15, 1.68, 1.12, 1.87, 1.74, 2.45, 2.68, 0.55, 1.88, 0.13, 2.01, 0.60, 1.69, 1.11, 1.58, 0.81,
            2.35, 1.20, 1.72, 1.64, 0.74, 1.00, 0.63, 0.50, 0.80, 0.68, 1.27, 1.45, 0.50, 0.70, 0.29, 1.22]
HEALTHY = [2.49, 2.18, 1.97, 1.83, 1.75, 1.44, 1.47, 1.40, 1.16, 1.07, 0.94, 1.01, 0.92, 0.82, 0.74, 0.72, 0.59, 0.62,
           0.53, 0.60, 0.51, 0.48, 0.45, 0.42, 0.38, 0.38, 0.42, 0.26, 0.29, 0.40, 0.29, 0.33, 0.35, 0.28, 0.18, 0.31,
           0.32, 0.16, 0.32, 0.31, 0.21, 0.22, 0.22, 0.22, 0.18, 0.24, 0.12, 0.20, 0.11, 0.24, 0.15, 0.20, 0.13, 0.19,
           0.27, 0.21, 0.09, 0.18, 0.12, 0.10, 0.11, 0.10, 0.09, 0.14, 0.12, 0.12, 0.11, 0.14, 0.11]
LN10 = math.log(10)


def test_an_early_explosion_is_named_far_from_its_threshold():
    verdict, _ = loss_trend.judge_loss_trend(TOO_HIGH, start=2.487, progress=1.0, seen="all", baseline=LN10)
    assert verdict.kind == "exploded" and verdict.severity == "warning"
    # 36.4 against a threshold of 3 x 2.49: an order of magnitude of margin, not a count sitting on its threshold.
    assert verdict.data["explosion_peak"] > 4 * verdict.data["explosion_threshold"]
    assert verdict.data["explosion_batch"] == 3 and verdict.data["start"] == pytest.approx(2.487)
    assert loss_trend.judge_loss_trend(HEALTHY, start=2.487, progress=1.0, seen="all", baseline=LN10) == (None, None)


def test_a_model_that_falls_back_to_the_prior_is_an_error():
    rng = random.Random(0)
    # A spike to 2x (no explosion), then a slow fall that ends at ln 10, with batch noise.
    curve = [2.3, 4.6, 4.2] + [LN10 + 1.5 * math.exp(-i / 10) + rng.gauss(0, 0.03) for i in range(80)]
    verdict, _ = loss_trend.judge_loss_trend(curve, progress=1.0, seen="all", baseline=LN10)
    assert verdict.kind == "baseline" and verdict.severity == "error"
    assert "ends at the prior" in verdict.message and verdict.data["ends_at_baseline"]
    # Before the planned run is over, the same curve is only a warning (it may still be learning).
    early, _ = loss_trend.judge_loss_trend(curve, progress=0.6, seen="60%", baseline=LN10)
    assert early is None or early.severity == "warning"


def test_a_cautious_fine_tune_a_few_percent_below_the_baseline_is_not_an_error():
    rng = random.Random(1)
    curve = [LN10 * (1 - 0.04 * i / 100) + rng.gauss(0, 0.02) for i in range(100)]  # ends 4 % below, falling
    verdict, _ = loss_trend.judge_loss_trend(curve, progress=1.0, seen="all", baseline=LN10)
    assert verdict is None or verdict.severity == "warning"


def test_one_outlier_batch_is_not_an_explosion():
    curve = [1.0, 1.0, 9.0] + [0.9 - 0.005 * i for i in range(60)]
    assert B.early_explosion(curve, start=1.0, baseline=1.0) is None


def test_ends_at_baseline_is_a_significance_test():
    assert B.ends_at_baseline([LN10 + d for d in (0.05, -0.05, 0.02, -0.03, 0.0)], LN10)
    assert not B.ends_at_baseline([0.5] * 10, LN10)
    assert not B.ends_at_baseline([LN10] * 10, None)


def test_the_baseline_is_never_above_ln_c_and_prefers_every_counted_label():
    assert B.label_prior_entropy([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], classes=10) == pytest.approx(LN10)
    facts = {"loss_kind": "cross_entropy", "num_classes": 10, "baseline_loss": 2.35,
             "baseline_from_label_prior": True, "label_counts": [26] * 10}
    value, how = B.trend_baseline(facts)
    assert value <= LN10 and "label-prior entropy" in how and "of 260 labels" in how
    facts["baseline_from_label_prior"] = False  # class weights or label smoothing: the initial-loss figure, capped
    assert B.trend_baseline(facts) == (LN10, "ln 10 (uniform prediction)")


def test_a_noisy_loss_crossing_three_times_a_low_first_batch_is_no_explosion():
    # Batches of one sample: the losses of a healthy run scatter over a decade, and a low first batch puts the
    # threshold inside their range; 8 of the first 40 cross it, 3 of them in a row, as random placement gives.
    noisy = [0.21, 1.24, 0.5, 2.1, 1.81, 2.08, 1.13, 0.74, 0.88, 1.5, 0.16, 1.88, 1.04, 2.46, 0.58, 1.93, 0.86,
             1.42, 0.11, 0.09, 0.4, 1.28, 1.43, 0.72, 0.38, 0.84, 2.04, 1.03, 0.9, 0.82, 0.76, 0.14, 0.93, 1.7,
             0.25, 0.12, 1.5, 0.47, 0.37, 0.18] + [0.05] * 60
    assert B.early_explosion(noisy, start=0.555, baseline=None) is None
    # The same noise with a real explosion of five batches: one long run, nothing like it around.
    exploded = noisy[:3] + [40.0, 90.0, 60.0, 30.0, 9.0] + noisy[3:]
    found = B.early_explosion(exploded, start=0.555, baseline=None)
    assert found is not None and found["peak"] == 90.0


def test_an_explosion_recovered_within_the_first_fifth_of_a_run_that_ends_far_below_is_information():
    # torchvision ResNet-18, SGD lr 0.05 with Nesterov and no warm-up, label smoothing 0.1 (val acc 0.99): 21 at
    # batch 5, back below 3 x its start at batch 17 of 128, ends near the smoothing's floor.
    rng = random.Random(3)
    curve = ([1.41, 1.9, 4.5, 12.0, 21.1, 18.0, 15.2, 12.5, 10.1, 9.3, 8.0, 7.1, 6.0, 5.2, 4.6, 4.5, 4.0]
             + [max(0.3, 0.44 + 1.2 * math.exp(-i / 15) + rng.gauss(0, 0.08)) for i in range(111)])
    verdict, _ = loss_trend.judge_loss_trend(curve, start=1.41, progress=1.0, seen="all", baseline=math.log(4))
    assert verdict.kind == "exploded" and verdict.severity == "info" and verdict.data["recovered_batch"] < 128 // 5
    # The quickstart's lr 1.0 spends 16 of its 69 batches (23 %) above the threshold: still a warning (above).
    assert B.early_explosion(TOO_HIGH, 2.487, LN10)["recovered_index"] > len(TOO_HIGH) // 5


def test_jumps_above_the_baseline_that_die_out_are_not_oscillation():
    # torchvision EfficientNet-B0 from scratch, RMSprop (val acc 0.98): its head starts overconfident (7.7 against
    # ln 4) and the jumps above ln 4 fade as the run goes on: 14 in the first half of the last 64 values, 2 after.
    effnet = [7.69, 7.09, 5.57, 4.7, 4.57, 6.97, 3.84, 4.93, 4.6, 3.0, 5.22, 3.33, 5.27, 4.73, 4.64, 4.71, 4.18, 4.36,
              4.76, 4.77, 3.37, 4.97, 5.05, 3.54, 3.87, 2.77, 1.94, 4.8, 5.21, 2.24, 3.85, 3.43, 1.69, 2.88, 5.41,
              1.71, 3.21, 3.62, 6.05, 1.37, 0.95, 1.5, 4.19, 3.06, 1.48, 0.76, 7.16, 4.83, 1.52, 1.07, 2.81, 4.61,
              1.76, 1.04, 1.23, 0.71, 1.15, 1.54, 2.05, 1.19, 1.74, 1.31, 0.76, 0.87, 1.97, 1.78, 0.61, 1.42, 1.91,
              1.42, 0.97, 2.79, 4.94, 1.93, 2.64, 2.54, 2.45, 0.97, 0.73, 0.38, 0.65, 0.87, 0.81, 0.42, 1.1, 2.44,
              0.78, 0.61, 0.38, 0.62, 7.8, 1.12, 0.51, 1.2, 0.77, 2.39, 0.86, 0.28, 0.74, 0.19, 0.16, 0.8, 0.53,
              0.14, 0.44, 0.14, 0.12, 0.8, 0.12, 0.5, 0.06, 0.02, 0.18, 0.39, 0.13, 0.78, 0.45, 0.19, 0.12, 0.98,
              1.63, 0.9, 1.54, 0.67, 0.11, 0.17, 0.14, 0.4]
    verdict, _ = loss_trend.judge_loss_trend(effnet, start=7.69, progress=1.0, seen="all", baseline=math.log(4))
    assert verdict is None or verdict.kind != "oscillating"
    # The same late window with its halves swapped: jumps that go on to the end are still named.
    late = effnet[-64:]
    swapped = effnet[:-64] + late[32:] + late[:32]
    verdict, _ = loss_trend.judge_loss_trend(swapped, start=7.69, progress=1.0, seen="all", baseline=math.log(4))
    assert verdict.kind == "oscillating"


def test_ln_c_stands_for_a_training_loss_only_when_the_cross_entropy_is_nearly_all_of_it():
    facts = {"loss_kind": "cross_entropy", "num_classes": 62}
    assert B.trend_baseline(facts)[0] == pytest.approx(math.log(62))
    # Cross-entropy plus a small weight penalty: ln C still describes the sum.
    assert B.trend_baseline({**facts, "main_loss_share": 0.93})[0] == pytest.approx(math.log(62))
    # ELECTRA: the generator's cross-entropy (4.5) is an eighth of the loss, 50 x the discriminator's BCE the rest.
    assert B.trend_baseline({**facts, "main_loss_share": 4.46 / 37.9}) == (None, "")
    assert B.trend_baseline({**facts, "main_loss_share": 0.12, "labels_sorted": True}) == (None, "")
