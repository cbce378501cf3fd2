import pytest
from helpers import Classifier, ProbeCheck, fit, read_report

import lightning_sanity
from lightning_sanity import SanitySummary


def test_default_callbacks_returns_plain_list_ending_with_summary():
    callbacks = lightning_sanity.default_callbacks()
    assert isinstance(callbacks, list) and isinstance(callbacks[-1], SanitySummary)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['no_such_option'\]; valid options are: .*ignore"):
        lightning_sanity.default_callbacks(no_such_option=1)


@pytest.mark.parametrize("arg", ["ignore", "disable"])
def test_unknown_check_name_names_the_valid_ones(arg):
    with pytest.raises(ValueError, match=f"`{arg}` got unknown check name.*valid names are: initial-loss"):
        lightning_sanity.default_callbacks(**{arg: ["nope"]})


def test_wrong_type_is_rejected_naming_the_argument():
    with pytest.raises(ValueError, match="`print_summary` must be True or False, got 'yes'"):
        lightning_sanity.default_callbacks(print_summary="yes")


def test_every_option_has_one_home():
    options = lightning_sanity.available_options()
    assert {"ignore", "disable", "print_summary"} <= set(options)


def test_ignored_check_is_silenced_not_dropped(tmp_path):
    t = fit(Classifier(), tmp_path, callbacks=[ProbeCheck.make(), SanitySummary(print_summary=False, ignore=["loss-trend"])],
            max_epochs=1)
    report = read_report(t.log_dir)
    (f,) = report["findings"]
    assert report["status"] == "pass"
    assert f["severity"] == "info" and f["data"]["silenced"] == "warning"


def test_disabled_check_is_shown_as_switched_off(tmp_path):
    probe = ProbeCheck.make().disable("loss-trend")
    t = fit(Classifier(), tmp_path, callbacks=[probe, SanitySummary(print_summary=False)], max_epochs=1)
    report = read_report(t.log_dir)
    assert report["findings"] == []
    status = {c["name"]: c for c in report["checks"]}["loss-trend"]
    assert status == {"name": "loss-trend", "status": "skipped", "detail": "switched off by the user"}


def test_every_suite_callback_is_exported_at_top_level():
    names = {type(c).__name__ for c in lightning_sanity.default_callbacks()}
    assert len(names) == 14
    for name in names:
        assert getattr(lightning_sanity, name).__name__ == name


def test_checks_done_with_the_first_batches_leave_the_dispatch_and_come_back_for_the_next_fit(tmp_path):
    from helpers import serious
    from torch import nn

    from lightning_sanity import DataChecks, LossInspector, ModelChecks, PredictionDynamics

    callbacks = lightning_sanity.default_callbacks(print_summary=False)
    early = [c for c in callbacks if isinstance(c, (LossInspector, DataChecks, ModelChecks, PredictionDynamics))]
    fit(Classifier(), tmp_path, callbacks=callbacks, max_epochs=1)
    # Lightning skips a hook attribute that is not callable: the finished checks cost nothing per batch.
    assert len(early) == 4 and all(c.on_train_batch_start is None for c in early)
    assert all(c.on_train_batch_end is None for c in early if isinstance(c, (LossInspector, DataChecks)))

    # The same callbacks in a second fit start over: the first step of a negated loss is judged again.
    negated = Classifier(loss_fn=lambda out, y: -nn.functional.cross_entropy(out, y))
    t = fit(negated, tmp_path, callbacks=callbacks, max_epochs=1)
    assert serious(read_report(t.log_dir), "initial-loss")
    assert all(c.on_train_batch_start is None for c in early)
