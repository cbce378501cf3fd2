import pytest

from lightning_sanity.findings import CHECKS, Finding, FindingCollector, Severity
from lightning_sanity.report import build_report


def test_contract_has_nineteen_checks():
    assert len(CHECKS) == len(set(CHECKS)) == 23


def test_unknown_check_name_is_rejected_with_valid_names():
    with pytest.raises(ValueError, match="valid names are: initial-loss"):
        Finding("loss-went-weird", "warning", "msg")


def test_repeated_finding_is_merged_with_a_count():
    c = FindingCollector(seed=3)
    for step in range(5):
        c.add(Finding("non-finite", "error", "NaN loss", global_step=step, epoch=0, batch_idx=step))
    (f,) = c.findings
    assert f.count == 5 and f.global_step == 0 and f.seed == 3
    assert f.to_dict()["data"] == {"count": 5, "last_global_step": 4}


def test_findings_with_other_where_stay_apart_and_worst_comes_first():
    c = FindingCollector()
    c.add(Finding("dead-gradient", "warning", "no grad", where="a"))
    c.add(Finding("dead-gradient", "warning", "no grad", where="b"))
    c.add(Finding("non-finite", "error", "NaN"))
    assert [f.where for f in c.findings] == [None, "a", "b"]
    assert c.status == "fail"


def test_check_status_pass_warn_fail_skipped():
    c = FindingCollector()
    c.enable("initial-loss", "loss-trend", "non-finite")
    c.skip("loss-trend", "loss not recognised")
    c.add(Finding("non-finite", "error", "NaN"))
    c.add(Finding("initial-loss", "info", "fine"))
    assert c.check_status("initial-loss") == "pass"
    assert c.check_status("loss-trend") == "skipped"
    assert c.check_detail("loss-trend") == "loss not recognised"
    assert c.check_status("non-finite") == "fail"
    assert c.check_status("lr-schedule") == "skipped"
    assert c.check_detail("lr-schedule") == "not enabled"


def test_silenced_findings_stay_visible_as_info():
    c = FindingCollector()
    c.add(Finding("lr-schedule", "warning", "lr collapses"))
    c.set_ignore(["lr-schedule"])
    c.add(Finding("lr-schedule", "warning", "lr collapses"))
    (f,) = c.findings
    assert f.severity is Severity.INFO and f.data["silenced"] == "warning" and f.count == 2
    assert build_report(c)["status"] == "pass"


def test_merge_takes_only_unseen_findings():
    a, b = FindingCollector(), FindingCollector()
    a.add(Finding("non-finite", "error", "NaN"))
    b.add(Finding("non-finite", "error", "NaN"))
    b.add(Finding("non-finite", "error", "NaN on rank 1", data={"rank": 1}))
    a.merge(b)
    assert sorted((f.message, f.count) for f in a.findings) == [("NaN", 1), ("NaN on rank 1", 1)]
