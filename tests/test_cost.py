"""The summary states what the suite cost: time inside its own code, measured, against the fit's wall time."""

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
    assert abs(cost["share"] - cost["suite_seconds"] / cost["fit_seconds"]) < 1e-3
    summary = (tmp_path / "logs" / "version_0" / "sanity" / "summary.md").read_text()
    assert "The suite's own cost:" in summary


def test_the_share_is_measured_not_estimated(tmp_path):
    slow, _ = _fit(tmp_path / "slow", extra=[_SlowCheck()])
    quick, _ = _fit(tmp_path / "quick")
    # Three epoch ends of 50 ms each land on the suite's clock, once each.
    assert slow["cost"]["suite_seconds"] >= 0.15
    assert slow["cost"]["suite_seconds"] < 0.15 + 3 * quick["cost"]["suite_seconds"] + 0.1
