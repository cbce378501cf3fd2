"""The verdict recipes on real small models: healthy ones pass, each bug gets its failure mode."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from _models_recipes import (
    CNN, Binary, CutInput, DictBatchClassifier, DigitsData, GradientAscent, MisalignedLabels, NegatedLoss,
    WrongModuleOptimizer, mlp,
)
from helpers import breast_cancer, digits, loader, read_report, serious
from torch.utils.data import DataLoader

from lightning_sanity.checks.curves import (
    clearly_better, label_entropy, predicted_labels, read_overfit_curve, reached_floor, varies_across_batch,
)
from lightning_sanity.recipes import input_independent_baseline, overfit_one_batch, zero_inputs


@pytest.fixture(scope="module")
def digits_loader() -> DataLoader:
    x, y = digits(512)
    return loader(x, y, batch_size=64)


def _seeded(factory, *args, **kwargs):
    torch.manual_seed(0)
    return factory(*args, **kwargs)


# --------------------------------------------------------------------------- curve reading (pure)


@pytest.mark.parametrize(
    ("curve", "mode"),
    [
        ([2.3 + 0.1 * i for i in range(30)], "rises"),
        ([-2.3 - 3.0 * i**1.5 for i in range(30)], "rises"),  # unbounded below the floor
        ([2.3, 2.1, float("nan"), 2.0], "non-finite"),
        ([2.3, 2.2, 80.0, 9.0, 3.0, 2.4, 2.3, 2.3, 2.3], "explodes"),
        ([2.3, 1.2] * 15, "oscillates"),
        ([2.3] * 30, "plateaus"),
        ([2.3 * 0.99**i for i in range(60)], "slow"),
    ],
)
def test_read_overfit_curve_names_each_shape(curve, mode):
    assert read_overfit_curve(curve).mode == mode


def test_curve_helpers():
    assert reached_floor(0.01, 2.3) and not reached_floor(0.5, 2.3) and not reached_floor(-50.0, 2.3)
    assert math.isclose(label_entropy(torch.tensor([0, 1, 2, 3])), math.log(4), rel_tol=1e-6)
    assert label_entropy(torch.randn(4)) is None
    pred, exp = predicted_labels(torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5)))  # per-token logits
    assert pred.shape == exp.shape == (10,)
    pred, exp = predicted_labels(torch.randn(3, 4, 6), torch.randint(0, 4, (3, 6)))  # (B, C, T) layout
    assert pred.shape == (18,)
    pred, exp = predicted_labels(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]))  # binary logits
    assert pred.tolist() == exp.tolist() == [1, 0]
    assert predicted_labels(torch.randn(4, 3), torch.randn(4, 3)) is None  # regression
    assert varies_across_batch(torch.ones(3, 2)) is False and varies_across_batch(torch.randn(3, 2)) is True
    assert clearly_better(0.5, 2.3) and not clearly_better(2.2, 2.3) and not clearly_better(float("nan"), 2.3)


def test_read_overfit_curve_rejects_empty():
    with pytest.raises(ValueError, match="losses"):
        read_overfit_curve([])


# --------------------------------------------------------------------------- overfit one batch: healthy


@pytest.mark.parametrize("factory", [mlp, CNN], ids=["mlp", "cnn-batchnorm-dropout"])
def test_healthy_models_pass_overfit(factory, digits_loader, tmp_path):
    verdict = overfit_one_batch(_seeded(factory), digits_loader, out_dir=tmp_path, progress=False)
    assert verdict.passed, verdict
    assert verdict.mode == "passed"
    assert verdict.figures["labels_correct"] == verdict.figures["labels_total"] == 16
    assert len(verdict.losses) < 500  # stopped early on success
    report = read_report(tmp_path)
    assert report["status"] == "pass" and not serious(report)
    assert report["findings"][0]["data"]["recipe"] == "overfit-one-batch"
    assert "PASS" in str(verdict)


def test_binary_classifier_with_warmup_scheduler_passes():
    x, y = breast_cancer()
    verdict = overfit_one_batch(_seeded(Binary), loader(x, y, batch_size=32), progress=False)
    assert verdict.passed, verdict
    assert verdict.figures["labels_total"] == 16


def test_datamodule_and_dict_batches_with_get_input():
    x, y = digits(256)
    batches = [{"pixels": x[i:i + 32], "label": y[i:i + 32]} for i in range(0, 256, 32)]
    verdict = overfit_one_batch(_seeded(DictBatchClassifier), batches, get_input=lambda b: b["pixels"],
                                get_target=lambda b: b["label"], progress=False)
    assert verdict.passed, verdict
    assert overfit_one_batch(_seeded(mlp), DigitsData(), batch_size=8, progress=False).figures["batch_size"] == 8


# --------------------------------------------------------------------------- overfit one batch: each bug


def test_gradient_ascent_rises(digits_loader, tmp_path):
    verdict = overfit_one_batch(_seeded(GradientAscent, lr=1e-3), digits_loader, steps=150, out_dir=tmp_path,
                                progress=False)
    assert not verdict.passed and verdict.mode == "rises", verdict
    assert verdict.losses[-1] > verdict.losses[0]
    (finding,) = serious(read_report(tmp_path), "loss-trend")
    assert finding["severity"] == "error" and finding["data"]["recipe"] == "overfit-one-batch"
    assert "sign" in finding["advice"]


def test_negated_loss_rises(digits_loader):
    verdict = overfit_one_batch(_seeded(NegatedLoss), digits_loader, steps=150, progress=False)
    assert verdict.mode == "rises" and verdict.figures["curve"].get("below_floor"), verdict


@pytest.mark.parametrize(("lr", "optimizer"), [(10.0, "adam"), (50.0, "sgd")])
def test_far_too_high_learning_rate(lr, optimizer, digits_loader, tmp_path):
    verdict = overfit_one_batch(_seeded(mlp, lr=lr, optimizer=optimizer), digits_loader, steps=150,
                                out_dir=tmp_path, progress=False)
    assert not verdict.passed and verdict.mode in ("explodes", "non-finite", "oscillates"), verdict
    assert "learning rate" in verdict.advice
    checks = {f["check"] for f in serious(read_report(tmp_path))}
    assert checks & {"loss-trend", "non-finite"}


def test_non_finite_loss_is_named():
    class LogOfZero(type(mlp())):
        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx) * torch.log(torch.zeros(()))

    x, y = digits(64)
    verdict = overfit_one_batch(_seeded(LogOfZero), loader(x, y), progress=False)
    assert verdict.mode == "non-finite" and len(verdict.losses) == 1
    (finding,) = [f for f in verdict.findings if f.check == "non-finite"]
    assert finding.severity.value == "error"


def test_optimizer_over_the_wrong_module_plateaus(digits_loader, tmp_path):
    verdict = overfit_one_batch(_seeded(WrongModuleOptimizer), digits_loader, out_dir=tmp_path, progress=False)
    assert verdict.mode == "plateaus", verdict
    assert len(set(verdict.losses)) == 1  # nothing the optimizer does reaches the model
    assert len(verdict.losses) == 51  # a loss that has not moved by a bit in 50 steps stops the run
    report = read_report(tmp_path)
    (coverage,) = serious(report, "optimizer-coverage")
    assert coverage["severity"] == "error" and coverage["where"] == "net.0.weight"
    assert serious(report, "loss-trend")[0]["data"]["mode"] == "plateaus"


def test_misaligned_labels_cannot_be_memorised(digits_loader):
    # Labels shuffled once are just other labels: one batch of them can still be memorised. The realistic bug is
    # inputs and labels losing their pairing at every step (here an in-step shuffle of the inputs only): the
    # model can then learn nothing but how often each label occurs, and the loss settles at that entropy.
    verdict = overfit_one_batch(_seeded(MisalignedLabels), digits_loader, progress=False)
    assert not verdict.passed and verdict.mode in ("plateaus", "oscillates"), verdict
    assert "label_entropy" in verdict.figures and "paired" in verdict.advice


# --------------------------------------------------------------------------- no observer effect


def test_overfit_leaves_model_rng_loader_and_folder_untouched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = digits(256)
    gen = torch.Generator().manual_seed(3)
    train = DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True, generator=gen)
    model = _seeded(CNN)
    model.net[2].eval()  # a mode the user chose must survive
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(2)
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy(), gen.get_state())
    verdict = overfit_one_batch(model, train, steps=20, seed=7, progress=False)
    assert torch.equal(states[0], torch.get_rng_state()) and states[1] == random.getstate()
    assert np.array_equal(states[2], np.random.get_state()[1]) and torch.equal(states[3], gen.get_state())
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), k
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())
    assert list(tmp_path.iterdir()) == []  # nothing written without out_dir
    again = overfit_one_batch(model, train, steps=20, seed=7, progress=False)
    assert again.losses == verdict.losses  # the seed makes it repeatable


# --------------------------------------------------------------------------- input-independent baseline


def test_baseline_healthy_mlp_has_clear_gap(digits_loader, tmp_path):
    verdict = input_independent_baseline(_seeded(mlp, lr=1e-3), digits_loader, out_dir=tmp_path, progress=False)
    assert verdict.passed, verdict
    assert verdict.figures["ratio"] < 0.5
    assert verdict.figures["zeroed_loss"] > 2.0  # the zeroed copy only learns the label frequencies
    assert len(verdict.curves["real"]) == len(verdict.curves["zeroed"]) == 200
    report = read_report(tmp_path)
    assert report["status"] == "pass" and report["findings"][0]["data"]["recipe"] == "input-independent-baseline"


def test_baseline_fires_when_input_is_cut_off(digits_loader, tmp_path):
    verdict = input_independent_baseline(_seeded(CutInput), digits_loader, out_dir=tmp_path, progress=False)
    assert not verdict.passed and verdict.mode == "no-gap", verdict
    report = read_report(tmp_path)
    (trend,) = serious(report, "loss-trend")
    assert trend["severity"] == "warning" and trend["data"]["ratio"] > 0.9
    assert serious(report, "constant-output")


def test_baseline_dict_batches_and_zero_inputs():
    x, y = digits(256)
    batches = [{"pixels": x[i:i + 64], "label": y[i:i + 64]} for i in range(0, 256, 64)]
    verdict = input_independent_baseline(_seeded(DictBatchClassifier, lr=1e-2), batches, steps=60,
                                          get_input=lambda b: b["pixels"], progress=False)
    assert verdict.passed, verdict
    zeroed = zero_inputs(batches[0], lambda b: b["pixels"])
    assert zeroed["pixels"].abs().sum() == 0 and torch.equal(zeroed["label"], batches[0]["label"])
    with pytest.raises(ValueError, match="get_input"):
        zero_inputs(batches[0], lambda b: b["pixels"] * 2)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"steps": 0}, "steps"), ({"seed": "x"}, "seed"), ({"tolerance": 2}, "tolerance"),
     ({"batch_size": 0}, "batch_size"), ({"out_dir": 3}, "out_dir"), ({"get_input": 1}, "get_input"),
     ({"loss_floor": float("nan")}, "loss_floor")],
)
def test_overfit_validates_arguments(kwargs, match, digits_loader):
    with pytest.raises(ValueError, match=match):
        overfit_one_batch(mlp(), digits_loader, **kwargs)


def test_recipes_reject_what_they_cannot_run(digits_loader):
    with pytest.raises(ValueError, match="LightningModule"):
        overfit_one_batch(torch.nn.Linear(2, 2), digits_loader)
    manual = mlp()
    manual.automatic_optimization = False
    with pytest.raises(ValueError, match="manual optimization"):
        input_independent_baseline(manual, digits_loader)
    with pytest.raises(ValueError, match="datamodule_or_loader"):
        overfit_one_batch(mlp(), torch.zeros(3, 64))
    with pytest.raises(ValueError, match="margin"):
        input_independent_baseline(mlp(), digits_loader, margin=1.5)


class _ExtraCopy(type(mlp())):
    """``mode="ema"``: an averaged copy kept beside the model, in no optimizer and in no loss; ``mode="head"``: a
    second head in the loss but left out of the optimizer (the bug)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.extra = torch.optim.swa_utils.AveragedModel(self.net) if mode == "ema" else torch.nn.Linear(64, 10)

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.mode == "head":
            loss = loss + 0.1 * self.extra(batch[0]).pow(2).mean()
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=1e-2)


@pytest.mark.parametrize("mode", ["ema", "head"])
def test_recipe_coverage_tells_an_averaged_copy_from_a_forgotten_head(digits_loader, mode):
    verdict = overfit_one_batch(_seeded(_ExtraCopy, mode), digits_loader, steps=20, progress=False)
    (coverage,) = [f for f in verdict.findings if f.check == "optimizer-coverage"]
    if mode == "ema":
        assert coverage.severity.value == "info" and coverage.where.startswith("extra.")
    else:
        assert coverage.severity.value == "warning" and coverage.where == "extra.weight"
