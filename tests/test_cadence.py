"""Charts that fit the run: the suite's periodic charts get about 20 points on a short run, and a long run that
logs every step is thinned (lightning_sanity.cadence)."""

import pytest
from helpers import Classifier, digits_loaders, events, trainer
from torch import nn

import lightning_sanity
from lightning_sanity.cadence import MAX_POINTS, MIN_POINTS, chart_every


@pytest.mark.parametrize("planned, log_every, every", [
    (90, 50, 4),            # the case: one point at Lightning's cadence, 22 here
    (400, 50, 20),
    (30, 50, 1),            # shorter than MIN_POINTS steps: every step
    (2000, 50, 50),         # the Trainer's own cadence fits
    (100_000, 1, 100),      # would be 100k points: thinned to MAX_POINTS
    (100_000, 50, 100),     # a multiple of log_every_n_steps, so points stay on logging steps
    (float("inf"), 50, 50),  # unknown length: the Trainer's cadence
    (500, 0, 0),            # no logging asked for
])
def test_chart_every(planned, log_every, every):
    assert chart_every(planned, log_every) == every


def test_points_stay_within_bounds_over_many_plans():
    for planned in (20, 21, 99, 150, 999, 1000, 1001, 20_000, 51_000, 10**6):
        for log_every in (1, 10, 50, 200):
            every = chart_every(planned, log_every)
            points = planned // every
            assert MIN_POINTS <= points <= MAX_POINTS or (planned < MIN_POINTS and every == 1), (planned, log_every)
            assert every <= log_every or every % log_every == 0


def test_a_short_run_draws_curves_not_dots(tmp_path):
    """A 46-step run at Lightning's default cadence (50) would log the norms and activations once; they get ~20
    points, read back from the event files with TensorBoard's own EventAccumulator."""
    train, val = digits_loaders()  # 23 batches per epoch
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    t = trainer(tmp_path, callbacks=lightning_sanity.default_callbacks(print_summary=False), max_epochs=2,
                log_every_n_steps=50)
    t.fit(Classifier(net=net), train, val)
    acc = events(t.log_dir)
    scalars = set(acc.Tags()["scalars"])
    for tag in ("sanity/grad_norm/net.0", "sanity/weight_norm/net.0", "sanity/dead_fraction/net.1"):
        assert tag in scalars, sorted(scalars)
        points = acc.Scalars(tag)
        assert len(points) >= MIN_POINTS - 2, (tag, [p.step for p in points])
    steps = [p.step for p in acc.Scalars("sanity/grad_norm/net.0")]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
