"""non-finite: NaN/Inf in the loss, gradients or weights is caught at its step, saved for replay, and acted on."""

import math

import lightning as L
import pytest
import torch
from _models_nonfinite import Injected, Regressor, SequenceClassifier, digit_tokens
from helpers import diabetes, digits_loaders, loader, read_report, serious, trainer
from lightning.pytorch.demos import LightningTransformer, Transformer
from lightning.pytorch.plugins import MixedPrecision

import lightning_sanity
from lightning_sanity import SanitySummary
from lightning_sanity.callbacks import step as step_state
from lightning_sanity.callbacks.batchnorm import BatchNormMonitor
from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel, NonFiniteStop
from lightning_sanity.checks.numerics import (anomaly_op, finite_flag, first_nonfinite, is_finite, nonfinite_names,
                                              owner_module)

NEVER = (99, 0)  # an injection point the run never reaches: the model stays healthy


def _callbacks(**options):
    return [NonFiniteSentinel(**options), BatchNormMonitor(), SanitySummary(print_summary=False)]


def _fit(tmp_path, model, train=None, callbacks=None, **kwargs):
    L.seed_everything(0, workers=True)
    settings = dict(max_epochs=3, limit_train_batches=8, limit_val_batches=0)
    settings.update(kwargs)
    t = trainer(tmp_path, callbacks if callbacks is not None else _callbacks(), **settings)
    t.fit(model, train if train is not None else digits_loaders()[0])
    return t, read_report(t.log_dir)


def _finite(model) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


# --------------------------------------------------------------------------- pure functions


def test_finite_flag_is_one_device_reduction_over_everything():
    ok = [torch.randn(3, 3), torch.randn(5), torch.randn(2, dtype=torch.bfloat16)]
    assert bool(finite_flag(ok, torch.tensor(2.0)))
    assert not bool(finite_flag(ok + [torch.tensor([1.0, -math.inf])]))
    assert not bool(finite_flag(ok, torch.tensor(math.nan)))
    assert finite_flag([None]) is None and finite_flag([]) is None
    flag = finite_flag(ok)
    assert flag.dtype == torch.bool and flag.dim() == 0  # stays a tensor: the caller decides when to sync
    # Huge but finite values overflow the sum: the flag is a hint, first_nonfinite is the truth.
    huge = [torch.full((4,), 3e38)]
    assert not bool(finite_flag(huge)) and first_nonfinite([("w", huge[0])]) is None


def test_locating_helpers():
    named = [("a.weight", torch.ones(2)), ("b.weight", torch.tensor([math.nan])), ("c.bias", torch.tensor([math.inf]))]
    assert first_nonfinite(named) == "b.weight"
    assert nonfinite_names(named) == ["b.weight", "c.bias"] and nonfinite_names(named, limit=1) == ["b.weight"]
    assert owner_module("encoder.0.weight") == "encoder.0" and owner_module("scale") == ""
    assert anomaly_op("Function 'DivBackward0' returned nan values in its 1th output.") == "DivBackward0"
    assert anomaly_op("something else") is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_is_finite_agrees_with_isfinite(dtype):
    # Tested from the tensor's two extremes read on the host: NaN and both infinities anywhere, and the largest
    # finite values of the dtype (which a sum would overflow), must read as torch.isfinite does.
    big = torch.finfo(dtype).max
    for values in ([1.0, -2.0], [big, big, -big], [1.0, math.nan], [math.inf, 0.0], [0.0, -math.inf], [math.nan] * 3):
        t = torch.tensor(values, dtype=dtype).reshape(-1, 1)
        assert is_finite(t) == bool(torch.isfinite(t).all()), values
    assert is_finite(torch.zeros(0, dtype=dtype)) and is_finite(torch.arange(3))


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="on_nonfinite.*'halt'.*'stop', 'skip', 'warn'"):
        NonFiniteSentinel(on_nonfinite="halt")
    assert lightning_sanity.available_options()["on_nonfinite"] == ("NonFiniteSentinel", "stop")


# --------------------------------------------------------------------------- detection and stopping


def test_nan_loss_a_few_epochs_in_is_named_saved_and_stops(tmp_path):
    model = Injected("log", at=(2, 5))
    t, report = _fit(tmp_path, model, max_epochs=5)
    (finding,) = serious(report, "non-finite")
    assert finding["severity"] == "error" and finding["where"] == "loss"
    assert (finding["epoch"], finding["batch_idx"], finding["global_step"], finding["seed"]) == (2, 5, 21, 0)
    assert finding["replay"] == "sanity/replay/step_21.pt"
    assert (t.log_dir and (tmp_path / "logs" / "version_0" / finding["replay"]).is_file())
    assert finding["data"]["kind"] == "loss" and finding["data"]["loss"] == "nan" and finding["data"]["rank"] == 0
    # Stopped cleanly right after the bad step: its update ran, nothing after it.
    assert t.global_step == 22
    assert report["status"] == "fail"

    result = lightning_sanity.replay(f"{t.log_dir}/{finding['replay']}", Injected("log", at=(2, 5)))
    assert result.reproduced and result.module == "net.1" and result.forward_op == "log"
    assert result.op is not None and result.op.endswith("Backward0")
    assert (result.epoch, result.batch_idx, result.global_step) == (2, 5, 21)
    assert "reproduced: yes" in str(result) and "net.1" in str(result)


def test_inf_out_of_one_layers_forward_is_named_by_replay(tmp_path):
    t, report = _fit(tmp_path, Injected("exp", at=(1, 2)))
    (finding,) = serious(report, "non-finite")
    assert (finding["epoch"], finding["batch_idx"]) == (1, 2)
    result = lightning_sanity.replay(f"{t.log_dir}/{finding['replay']}", Injected("exp", at=(1, 2)))
    assert result.reproduced and result.module == "net.1" and result.forward_op == "exp"


def test_nan_gradient_with_finite_loss_names_the_layer_and_the_op(tmp_path):
    t, report = _fit(tmp_path, Injected("sqrt", at=(1, 3)))
    (finding,) = serious(report, "non-finite")
    # The loss stayed finite; the first layer (in backward order) with a NaN gradient is the one under the sqrt.
    assert finding["data"]["kind"] == "gradient" and finding["where"] == "net.0"
    assert isinstance(finding["data"]["loss"], float) and finding["data"]["parameter"].startswith("net.0.")
    result = lightning_sanity.replay(f"{t.log_dir}/{finding['replay']}", Injected("sqrt", at=(1, 3)))
    assert result.reproduced and result.module is None and result.op == "SqrtBackward0"
    assert math.isfinite(result.loss) and result.nonfinite_gradients[0].startswith("net.0.")


@pytest.mark.parametrize("monitor_first", [True, False], ids=["monitor-first", "sentinel-first"])
def test_nan_gradient_is_caught_from_the_norms_the_norm_monitor_shares(tmp_path, monkeypatch, monitor_first):
    # With the norm monitor in front, the sentinel takes its flag from the monitor's norms of the same step; behind
    # it, the sentinel reads first and must never take the norms the monitor handed over in the previous step.
    from lightning_sanity.callbacks import nonfinite
    from lightning_sanity.callbacks.norms import NormMonitor

    taken = []

    def spy(*args):
        norms = step_state.shared_grad_norms(*args)
        taken.append(norms is not None)
        return norms

    monkeypatch.setattr(nonfinite, "shared_grad_norms", spy)
    checks = [NormMonitor(), NonFiniteSentinel()]
    callbacks = [*(checks if monitor_first else checks[::-1]), SanitySummary(print_summary=False)]
    _, report = _fit(tmp_path, Injected("sqrt", at=(1, 3)), callbacks=callbacks)
    (finding,) = serious(report, "non-finite")
    assert finding["data"]["kind"] == "gradient" and (finding["epoch"], finding["batch_idx"]) == (1, 3)
    assert len(taken) >= 8 and all(taken) if monitor_first else not any(taken)


def test_nan_made_by_the_loss_code_outside_any_module(tmp_path):
    t, report = _fit(tmp_path, Injected("nan-loss", at=(1, 0)))
    (finding,) = serious(report, "non-finite")
    assert finding["where"] == "loss" and (finding["epoch"], finding["batch_idx"]) == (1, 0)
    result = lightning_sanity.replay(f"{t.log_dir}/{finding['replay']}", Injected("nan-loss", at=(1, 0)))
    assert result.reproduced and result.module is None and result.forward_op == "log"


def test_diverging_learning_rate(tmp_path):
    x, y = diabetes()
    t, report = _fit(tmp_path, Regressor(lr=0.05), train=loader(x, y, 32))
    (finding,) = serious(report, "non-finite")
    assert finding["severity"] == "error" and finding["replay"] is not None
    assert finding["data"]["kind"] in ("loss", "gradient", "weights")
    assert t.global_step < 10  # stopped within a few steps of the divergence


def test_manual_optimization(tmp_path):
    t, report = _fit(tmp_path, Injected("log", at=(1, 4), manual=True))
    (finding,) = serious(report, "non-finite")
    assert (finding["epoch"], finding["batch_idx"], finding["where"]) == (1, 4, "loss")
    result = lightning_sanity.replay(f"{t.log_dir}/{finding['replay']}", Injected("log", at=(1, 4), manual=True))
    assert result.reproduced and result.module == "net.1"


def test_nan_on_a_micro_batch_without_optimizer_step(tmp_path):
    # With accumulation, batch 2 of an epoch is the first micro-batch of a window: no optimizer step follows it.
    t, report = _fit(tmp_path, Injected("log", at=(1, 2)), accumulate_grad_batches=2)
    (finding,) = serious(report, "non-finite")
    assert (finding["epoch"], finding["batch_idx"], finding["where"]) == (1, 2, "loss")
    assert finding["data"]["accumulate_grad_batches"] == 2


# --------------------------------------------------------------------------- actions


def test_skip_drops_the_bad_step_and_goes_on(tmp_path):
    model = Injected("log", at=(1, 3))
    t, report = _fit(tmp_path, model, callbacks=_callbacks(on_nonfinite="skip"))
    (finding,) = serious(report, "non-finite")
    assert finding["severity"] == "warning" and finding["data"]["action"] == "skip"
    assert t.global_step == 24 and _finite(model)  # every step ran, the weights never saw the NaN
    assert "1 skipped" in {c["name"]: c["detail"] for c in report["checks"]}["non-finite"]


def test_warn_reports_and_goes_on(tmp_path):
    model = Injected("log", at=(1, 3))
    t, report = _fit(tmp_path, model, callbacks=_callbacks(on_nonfinite="warn"))
    findings = serious(report, "non-finite")
    assert findings[0]["severity"] == "error" and t.global_step == 24
    # The NaN update broke the weights; the following steps say so.
    assert {f["data"]["kind"] for f in findings} >= {"loss", "weights"}
    assert not _finite(model)


def test_stop_when_the_trainer_will_not_stop(tmp_path):
    with pytest.raises(NonFiniteStop, match="min_epochs"):
        _fit(tmp_path, Injected("log", at=(0, 3)), min_epochs=3)
    report = read_report(tmp_path / "logs" / "version_0")
    assert serious(report, "non-finite")[0]["global_step"] == 3


# --------------------------------------------------------------------------- precision


def test_bf16_mixed_on_cpu_healthy_is_silent_and_nan_is_caught(tmp_path):
    _, report = _fit(tmp_path / "ok", Injected("log", at=NEVER), precision="bf16-mixed", max_epochs=2)
    assert not [f for f in report["findings"] if f["check"] == "non-finite"]
    _, report = _fit(tmp_path / "bad", Injected("exp", at=(1, 1)), precision="bf16-mixed", max_epochs=2)
    (finding,) = serious(report, "non-finite")
    assert finding["data"]["precision"] == "bf16-mixed" and (finding["epoch"], finding["batch_idx"]) == (1, 1)


def test_fp16_scaler_overflows_are_info_not_errors(tmp_path):
    # A GradScaler starting far too high overflows for some steps while it halves its scale: expected, info only.
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**40))
    _, report = _fit(tmp_path, Injected("log", at=NEVER), plugins=[plugin], max_epochs=2)
    assert not serious(report, "non-finite")
    (info,) = [f for f in report["findings"] if f["check"] == "non-finite"]
    assert info["severity"] == "info" and info["data"]["kind"] == "amp-overflow" and info["data"]["count"] >= 2


# --------------------------------------------------------------------------- healthy runs stay silent


def _assert_silent(report):
    mine = [f for f in report["findings"] if f["check"] in ("non-finite", "batchnorm-variance")]
    assert not mine, mine
    assert {c["name"]: c["status"] for c in report["checks"]}["non-finite"] == "pass"


def test_healthy_mlp_with_dropout_is_silent(tmp_path):
    _assert_silent(_fit(tmp_path, Injected("log", at=NEVER, dropout=0.3))[1])


def test_healthy_lstm_is_silent(tmp_path):
    _assert_silent(_fit(tmp_path, SequenceClassifier(), max_epochs=1)[1])


class _DigitTransformer(LightningTransformer):
    """The Lightning demo transformer, smaller, on digit images read as token sequences."""

    def __init__(self) -> None:
        super().__init__(vocab_size=17)
        self.model = Transformer(vocab_size=17, ninp=32, nhead=2, nhid=64, nlayers=1)

    def prepare_data(self) -> None:  # the demo would download WikiText-2
        pass


def test_healthy_transformer_is_silent(tmp_path):
    tokens = digit_tokens(256)
    data = loader(tokens[:, :-1], tokens[:, 1:], batch_size=32)
    _assert_silent(_fit(tmp_path, _DigitTransformer(), train=data, max_epochs=1, limit_train_batches=4)[1])
