"""The summary states what the suite cost: time inside its own code, measured, against the fit's wall time."""

import gc
import time

from helpers import Classifier, digits_loaders, read_report, trainer

import lightning_sanity
from lightning_sanity.callbacks.base import SanityCallback


class _SlowCheck(SanityCallback):
    """Stands for an expensive check: 50 ms of work at every epoch end."""

    checks = ()

    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep(0.05)


def _fit(tmp_path, extra=()):
    # A full garbage collection of the test session's heap (0.1-0.2 s, due whenever allocations cross its
    # threshold) must not land on the suite's clock inside a fit whose time is compared with a tight bound.
    gc.collect()
    train, val = digits_loaders(n=256)
    t = trainer(tmp_path, callbacks=[*extra, *lightning_sanity.default_callbacks(print_summary=False)], max_epochs=3)
    start = time.perf_counter()
    t.fit(Classifier(), train, val)
    return read_report(t.log_dir), time.perf_counter() - start


def test_summary_states_the_suites_share_of_the_fit_time(tmp_path):
    report, wall = _fit(tmp_path)
    cost = report["cost"]
    assert 0 < cost["suite_seconds"] < cost["fit_seconds"] <= wall
    assert cost["fit_seconds"] > 0.5 * wall  # the clock runs from the suite's first hook to the summary
    # The seconds are rounded to 1e-4 and the share is taken before rounding: on a short fit the rounding alone
    # moves their ratio by up to (1 + share) * 5e-5 / fit.
    rounding = 5e-5 * (1 + cost["share"]) / cost["fit_seconds"] + 5e-5
    assert abs(cost["share"] - cost["suite_seconds"] / cost["fit_seconds"]) <= rounding * 1.01
    summary = (tmp_path / "logs" / "version_0" / "sanity" / "summary.md").read_text()
    assert "The suite's own cost:" in summary


def test_the_share_is_measured_not_estimated(tmp_path):
    slow, _ = _fit(tmp_path / "slow", extra=[_SlowCheck()])
    quick, _ = _fit(tmp_path / "quick")
    # Three epoch ends of 50 ms each land on the suite's clock, once each.
    assert slow["cost"]["suite_seconds"] >= 0.15
    assert slow["cost"]["suite_seconds"] < 0.15 + 3 * quick["cost"]["suite_seconds"] + 0.1


class _SlowEval(Classifier):
    """A model whose eval-mode forward (what a fixed-batch snapshot runs) costs 15 ms: a deliberately expensive
    fixed batch, against training steps of about a millisecond."""

    def forward(self, x):
        if not self.training:
            time.sleep(0.015)
        return self.net(x)


def _jitter_fit(tmp_path, **options):
    train, val = digits_loaders(batch_size=16, n=512)
    callbacks = lightning_sanity.default_callbacks(print_summary=False, **options)
    t = trainer(tmp_path, callbacks=callbacks, max_epochs=10, limit_val_batches=1, log_every_n_steps=1)
    t.fit(_SlowEval(), train, val)
    report = read_report(t.log_dir)
    detail = next(c["detail"] for c in report["checks"] if c["name"] == "prediction-jitter")
    return report["cost"], int(detail.split(" snapshots")[0]), detail


def test_periodic_work_on_an_expensive_fixed_batch_stays_within_its_budget(tmp_path):
    lifted, lifted_taken, _ = _jitter_fit(tmp_path / "lifted", periodic_budget=None)
    least, least_taken, _ = _jitter_fit(tmp_path / "least", periodic_budget=1e-6)  # the required looks only
    held, held_taken, detail = _jitter_fit(tmp_path / "held")
    figures = (lifted, lifted_taken, least, least_taken, held, held_taken)
    assert 10 <= least_taken <= held_taken < lifted_taken, figures  # jitter needs 10 (the first, 2 x 4, a spare)
    assert "left out to keep within the periodic-work budget" in detail, detail
    # Beyond the looks the judgements need, periodic work takes 2 % of the training time and one more look (a
    # snapshot of two 15 ms forwards); 10 % of the required looks' time absorbs the scheduler's jitter on sleeps.
    extra = held["periodic_seconds"] - least["periodic_seconds"]
    assert extra <= 0.02 * held["fit_seconds"] + 0.1 * least["periodic_seconds"] + 0.05, figures
    assert held["periodic_seconds"] < lifted["periodic_seconds"], figures


class _SlowDataModel(Classifier):
    """A model whose training dataloader takes two seconds to build (a dataset read and tokenised at load)."""

    def __init__(self, loader):
        super().__init__()
        self.loader = loader

    def train_dataloader(self):
        time.sleep(2.0)
        return self.loader


def test_loading_the_users_data_is_not_the_suites_cost(tmp_path):
    # The suite reads the planned length at fit start, which makes Lightning load the training dataloader then
    # rather than a moment later: the user's run pays that once either way.
    gc.collect()
    train, val = digits_loaders(n=256)
    t = trainer(tmp_path, callbacks=lightning_sanity.default_callbacks(print_summary=False), max_epochs=1)
    t.fit(_SlowDataModel(train), val_dataloaders=val)
    cost = read_report(t.log_dir)["cost"]
    assert cost["fit_seconds"] > 2.0  # the load happened inside the fit
    assert cost["suite_seconds"] < 2.0, cost  # and not on the suite's clock (about 0.3 s of its own here)
