"""The summary callback on real Trainer runs: the three ways fit can end, and every logger set-up."""

import os

import lightning as L
import pytest
from helpers import Classifier, CrashingClassifier, ProbeCheck, fit, read_report, serious, text_summaries, trainer

import lightning_sanity
from lightning_sanity import SanitySummary


def _suite(*probes):
    return [*probes, SanitySummary(print_summary=False)]


@pytest.mark.parametrize("logger", ["tensorboard", "csv", "both", None])
def test_summary_written_to_log_dir_for_every_logger_setup(tmp_path, logger):
    t = fit(Classifier(), tmp_path, callbacks=_suite(ProbeCheck.make()), logger=logger, max_epochs=1)
    expected = tmp_path if logger is None else t.log_dir
    assert os.path.normpath(t.log_dir) == os.path.normpath(expected)
    report = read_report(t.log_dir)
    assert (tmp_path / os.path.relpath(t.log_dir, tmp_path) / "sanity" / "summary.md").is_file()
    (probe,) = serious(report, "loss-trend")
    # One finding per batch, reported once with a count.
    assert probe["data"]["count"] == t.num_training_batches
    assert probe["epoch"] == 0 and probe["batch_idx"] == 0 and probe["global_step"] == 0


def test_summary_goes_to_tensorboard_text_dashboard(tmp_path):
    t = fit(Classifier(), tmp_path, callbacks=_suite(ProbeCheck.make()), max_epochs=1)
    (text,) = text_summaries(t.log_dir, "sanity/summary/text_summary")
    assert text.startswith("# Sanity summary: WARN") and "probe finding" in text


def test_summary_lists_every_check(tmp_path):
    t = fit(Classifier(), tmp_path, callbacks=_suite(ProbeCheck.make()), max_epochs=1)
    statuses = {c["name"]: c["status"] for c in read_report(t.log_dir)["checks"]}
    assert len(statuses) == 23 and statuses["loss-trend"] == "warn"
    assert statuses["batch-mixing"] == "skipped"


def test_summary_printed_to_terminal(tmp_path, capsys):
    fit(Classifier(), tmp_path, callbacks=[ProbeCheck.make(), SanitySummary()], max_epochs=1)
    out = capsys.readouterr().out
    assert "Sanity summary: WARN" in out and "probe finding on rank 0" in out
    assert "Try: nothing to try" in out


def test_summary_written_when_user_code_raises(tmp_path):
    model = CrashingClassifier(RuntimeError("boom in training_step"), at_step=3)
    t = trainer(tmp_path, _suite(ProbeCheck.make()))
    with pytest.raises(RuntimeError, match="boom"):
        t.fit(model, *__import__("helpers").digits_loaders())
    report = read_report(t.log_dir)
    assert serious(report, "loss-trend")[0]["data"]["count"] == 4  # batches 0..3 started; step 3 raised
    assert "Training ended early: RuntimeError('boom in training_step')" in (
        open(os.path.join(t.log_dir, "sanity", "summary.md")).read()
    )


def test_summary_written_on_keyboard_interrupt(tmp_path):
    model = CrashingClassifier(KeyboardInterrupt(), at_step=2)
    t = trainer(tmp_path, _suite(ProbeCheck.make()))
    with pytest.raises(SystemExit):  # Lightning turns Ctrl+C into a graceful exit(1)
        t.fit(model, *__import__("helpers").digits_loaders())
    report = read_report(t.log_dir)
    assert serious(report, "loss-trend")[0]["data"]["count"] == 3  # batches 0..2 started; step 2 was interrupted
    assert "Ctrl+C" in open(os.path.join(t.log_dir, "sanity", "summary.md")).read()


def test_seed_is_read_from_seed_everything(tmp_path):
    L.seed_everything(123)
    t = fit(Classifier(), tmp_path, callbacks=_suite(ProbeCheck.make()), max_epochs=1)
    report = read_report(t.log_dir)
    assert report["seed"] == 123
    assert serious(report)[0]["seed"] == 123


def test_no_seed_is_reported_as_null_with_advice(tmp_path):
    t = fit(Classifier(), tmp_path, callbacks=_suite(), max_epochs=1)
    report = read_report(t.log_dir)
    assert report["seed"] is None and report["status"] == "pass"
    assert "seed_everything" in open(os.path.join(t.log_dir, "sanity", "summary.md")).read()


def test_unwritable_log_dir_warns_and_training_goes_on(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the sanity folder should go")
    t = trainer(tmp_path, _suite(ProbeCheck.make()), logger=None, default_root_dir=blocker, max_epochs=1)
    with pytest.warns(UserWarning, match="could not write the summary"):
        t.fit(Classifier(), *__import__("helpers").digits_loaders())
    assert t.state.finished and t.global_step > 0


def test_second_fit_starts_a_clean_report(tmp_path):
    summary = SanitySummary(print_summary=False)
    t = trainer(tmp_path, [ProbeCheck.make(), summary], max_epochs=1)
    train, val = __import__("helpers").digits_loaders()
    t.fit(Classifier(), train, val)
    first = summary.last_report["findings"][0]["data"]["count"]
    t.fit_loop.max_epochs = 2
    t.fit(Classifier(), train, val)
    assert summary.last_report["findings"][0]["data"]["count"] == first


def test_default_callbacks_healthy_run_validates(tmp_path):
    t = fit(Classifier(), tmp_path, max_epochs=1)
    report = read_report(t.log_dir)
    assert report["status"] == "pass" and not serious(report)
