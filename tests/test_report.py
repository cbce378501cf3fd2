import json

import pytest
from helpers import report_problems

from lightning_sanity import load_report
from lightning_sanity.findings import Finding, FindingCollector
from lightning_sanity.report import build_report, render_markdown, render_text, write_report


def _report():
    c = FindingCollector(seed=42)
    c.enable("non-finite", "initial-loss")
    c.detail("initial-loss", "2.31 vs ln(10) = 2.30")
    c.add(Finding("non-finite", "error", "The loss became NaN.", "Lower the learning rate.", epoch=3,
                  batch_idx=17, global_step=212, seed=42, where="encoder.layer2", replay="sanity/replay/step_212.pt"))
    return build_report(c)


def test_report_validates_against_contract():
    report = _report()
    assert report_problems(report) == []
    assert report["status"] == "fail"
    assert {c["name"]: c["status"] for c in report["checks"]}["non-finite"] == "fail"


def test_markdown_and_text_show_checks_findings_and_advice():
    report = _report()
    for text in (render_markdown(report), render_text(report)):
        assert "non-finite" in text and "FAIL" in text
        assert "Lower the learning rate." in text
        assert "epoch 3, batch 17, step 212" in text
        assert "sanity/replay/step_212.pt" in text
        assert "2.31 vs ln(10) = 2.30" in text


def test_markdown_says_when_no_seed_was_set():
    report = build_report(FindingCollector(seed=None))
    assert "seed_everything" in render_markdown(report)
    assert "Global seed: 42" in render_markdown(_report())


def test_write_and_load_round_trip(tmp_path):
    report = _report()
    folder = write_report(report, tmp_path)
    assert (folder / "summary.md").is_file()
    assert load_report(tmp_path) == report
    assert load_report(folder) == report
    assert load_report(folder / "summary.json") == report


def test_load_report_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="found no summary.json"):
        load_report(tmp_path / "nowhere")


def test_load_report_rejects_other_schema(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"schema": 2, "findings": []}))
    with pytest.raises(ValueError, match="schema 2"):
        load_report(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(ValueError, match="not a lightning_sanity summary"):
        load_report(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_report(tmp_path)


def test_load_report_after_fast_dev_run_takes_log_dir_none_or_the_trainer(tmp_path):
    # fast_dev_run swaps the logger for one without a folder: trainer.log_dir is None, the report sits under
    # default_root_dir. The documented call must still work.
    import lightning as L
    from helpers import Classifier, digits_loaders

    import lightning_sanity

    train, _ = digits_loaders(n=128)
    trainer = L.Trainer(fast_dev_run=True, default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks(print_summary=False))
    trainer.fit(Classifier(), train)
    assert trainer.log_dir is None
    by_log_dir = load_report(trainer.log_dir)
    assert (tmp_path / "sanity" / "summary.json").is_file()
    assert by_log_dir == load_report(trainer) == load_report(tmp_path)
    assert report_problems(by_log_dir) == []


def test_load_report_rejects_what_is_not_a_path_naming_the_argument():
    with pytest.raises(ValueError, match="`load_report` takes a run's `trainer.log_dir`"):
        load_report(42)
