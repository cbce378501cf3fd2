"""causal-leakage and target-leakage on real Trainers: each leak fires, the same model with the leak closed is silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from _models_leakage import (
    ClosedDemoLM,
    ConvForecaster,
    DecoderLM,
    DemoTransformerLM,
    DictTokens,
    GRUSeq2Seq,
    HFStyleLM,
    motif_tokens,
    random_tokens,
    reverse_loader,
    series_loader,
    shifted_loader,
)
from helpers import Classifier, fit_report, loader, read_report, serious, trainer
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity
from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import leakage as L_checks

LEAKS = ("causal-leakage", "target-leakage")


def _run(tmp_path, model, train, max_epochs=1, **kwargs) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, model, train, [LeakageChecks(**kwargs), SanitySummary(print_summary=False)],
                      logger=None, max_epochs=max_epochs)


def _status(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"] if c["name"] in LEAKS}


# --------------------------------------------------------------------------- Lightning's demo Transformer


def test_demo_transformer_trained_as_its_demo_is_reported(tmp_path):
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=1)
    t.fit(DemoTransformerLM(), shifted_loader(random_tokens(64, 0)), shifted_loader(random_tokens(32, 1), shuffle=False))
    report = read_report(t.log_dir)
    causal, target = serious(report, "causal-leakage"), serious(report, "target-leakage")
    assert causal and causal[0]["severity"] == "error" and "mask" in causal[0]["advice"]
    assert target and target[0]["severity"] == "error" and "shifted right" in target[0]["advice"]
    # LightningTransformer's training_step calls `self(inputs, target)`: the LightningModule itself is fed the target.
    assert "`DemoTransformerLM(...)` is fed the batch's target unshifted" in target[0]["message"]


def test_demo_transformer_with_the_leaks_closed_is_silent(tmp_path):
    report = _run(tmp_path, ClosedDemoLM(), shifted_loader(random_tokens(64, 0)))
    assert _status(report) == {"causal-leakage": "pass", "target-leakage": "pass"}
    assert not serious(report)


# --------------------------------------------------------------------------- decoder-only LM, HF-style LM


@pytest.mark.parametrize("causal", [True, False])
def test_decoder_only_lm_fires_without_its_causal_mask(tmp_path, causal):
    report = _run(tmp_path, DecoderLM(causal=causal), shifted_loader(motif_tokens(64, 0)))
    found = serious(report, "causal-leakage")
    if causal:
        assert _status(report)["causal-leakage"] == "pass" and not serious(report)
    else:
        assert found and found[0]["data"]["position"] <= found[0]["data"]["perturbed_after"]


def _hf_loader(n: int = 64) -> DataLoader:
    return DataLoader(DictTokens(motif_tokens(n, 0)), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def test_hf_style_causal_lm_with_in_model_shift_is_silent(tmp_path):
    report = _run(tmp_path, HFStyleLM(), _hf_loader(), max_epochs=4)
    assert _status(report) == {"causal-leakage": "pass", "target-leakage": "pass"}
    detail = {c["name"]: c["detail"] for c in report["checks"]}["target-leakage"]
    assert "loss on random tokens" in detail


def test_hf_style_lm_without_causal_mask_fires(tmp_path):
    report = _run(tmp_path, HFStyleLM(causal=False), _hf_loader())
    assert serious(report, "causal-leakage")


def test_hf_style_lm_scoring_each_token_on_itself_fires_after_training(tmp_path):
    # labels == input_ids but the model forgets to shift: it learns to copy, which random tokens expose.
    report = _run(tmp_path, HFStyleLM(shift=False, lr=1e-2), _hf_loader(), max_epochs=6)
    found = serious(report, "target-leakage")
    assert found and "random tokens" in found[0]["message"] and not serious(report, "causal-leakage")


def test_token_targets_equal_to_inputs_fire_when_the_model_copies(tmp_path):
    seq = motif_tokens(48, 0)[:, :-1]
    train = DataLoader(TensorDataset(seq, seq.clone()), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    report = _run(tmp_path / "copy", DecoderLM(causal=True, lr=1e-2), train, max_epochs=6)
    assert serious(report, "target-leakage")
    assert _status(report)["causal-leakage"] == "skipped"
    # The same batches with the shift done in training_step: a sound next-token LM, silent.
    report = _run(tmp_path / "shift", DecoderLM(causal=True, lr=1e-2, shift_in_step=True), train, max_epochs=6)
    assert _status(report)["target-leakage"] == "pass" and not serious(report)


# --------------------------------------------------------------------------- GRU seq2seq and Conv1d forecaster


@pytest.mark.parametrize("shift", [True, False])
def test_gru_seq2seq_teacher_forcing_must_be_shifted(tmp_path, shift):
    report = _run(tmp_path, GRUSeq2Seq(shift=shift), reverse_loader(64))
    assert _status(report)["causal-leakage"] == "skipped"  # a reversal is not a next-element task
    assert bool(serious(report, "target-leakage")) is (not shift)
    assert not serious(report, "causal-leakage")


@pytest.mark.parametrize("causal", [True, False])
def test_conv1d_forecaster_must_pad_on_the_left(tmp_path, causal):
    report = _run(tmp_path, ConvForecaster(causal=causal), series_loader(64))
    assert bool(serious(report, "causal-leakage")) is (not causal)
    assert not serious(report, "target-leakage")


# --------------------------------------------------------------------------- tabular label column


@pytest.mark.parametrize("leak", [False, True])
def test_tabular_label_column(tmp_path, leak):
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    x = (x - x.mean(0)) / x.std(0)
    if leak:
        x = torch.cat([x[:, :5], (y[:, None].float() - 1) / 0.8, x[:, 5:]], 1)
    report = _run(tmp_path, Classifier(in_features=x.shape[1], classes=3), loader(x, y, 32))
    found = serious(report, "target-leakage")
    assert bool(found) is leak
    if leak:
        assert found[0]["where"] == "input column 5" and found[0]["data"]["how"] == "equal"
    assert _status(report)["causal-leakage"] == "skipped"


def test_label_columns_one_hot_and_affine():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 4
    x = torch.randn(40, 6, generator=g)
    assert L_checks.label_columns(x, y) == ([], "")
    hot = torch.nn.functional.one_hot(y, 4).float()
    assert L_checks.label_columns(torch.cat([x, hot], 1), y) == ([6, 7, 8, 9], "one-hot")
    target = torch.randn(40, generator=g)
    assert L_checks.label_columns(torch.cat([x, 3 * target[:, None] + 1], 1), target) == ([6], "affine")


def test_forward_fn_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="forward_fn"):
        LeakageChecks(forward_fn=3)
    report = _run(tmp_path, DecoderLM(causal=False), shifted_loader(motif_tokens(32, 0)),
                  forward_fn=lambda module, x: module(x))
    assert serious(report, "causal-leakage")[0]["data"]["called_as"] == "forward_fn(pl_module, x)"


def test_zero_observer_effect_on_a_sequence_model(tmp_path):
    def run(callbacks):
        L.seed_everything(0)
        model = DemoTransformerLM()
        t = trainer(tmp_path, callbacks, logger=None, max_epochs=2)
        # No generator: the loader draws its seed from the global RNG, so any draw by a check would show.
        seq = random_tokens(48, 0)
        t.fit(model, DataLoader(TensorDataset(seq[:, :-1], seq[:, 1:]), batch_size=16, shuffle=True))
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    bare = run([])
    watched = run(lightning_sanity.default_callbacks(print_summary=False))
    for name, value in bare.items():
        assert torch.equal(value, watched[name]), name


def test_regression_target_among_the_features_warns_but_a_one_feature_line_does_not(tmp_path):
    from helpers import diabetes

    x, y = diabetes()
    y = (y - y.mean()) / y.std()
    model = Classifier(in_features=11, classes=1, loss_fn=lambda out, t: torch.nn.functional.mse_loss(out[:, 0], t))
    report = _run(tmp_path / "leak", model, loader(torch.cat([x, 2 * y[:, None] + 1], 1), y, 32))
    (found,) = serious(report, "target-leakage")
    assert found["severity"] == "warning" and found["data"]["how"] == "affine" and found["where"] == "input column 10"
    # y = 3x + 1 without noise: the only feature is the task, not a leak.
    line = torch.linspace(-1, 1, 128)[:, None]
    model = Classifier(in_features=1, classes=1, loss_fn=lambda out, t: torch.nn.functional.mse_loss(out[:, 0], t))
    assert not serious(_run(tmp_path / "line", model, loader(line, 3 * line[:, 0] + 1, 32)), "target-leakage")
