"""Prediction dynamics on a fixed batch, on real Trainer runs: charts read back from the event files, the history
file, and the prediction-jitter / constant-output / train-mode / non-finite findings."""

import io
import time

import lightning as L
import numpy as np
import pytest
import torch
from _models_dynamics import (
    Autoencoder,
    DropoutBlock,
    FactsFromInitialLoss,
    GateClosesAfterStart,
    Regressor,
    RowLSTM,
    SamplingBlock,
    TinyLM,
    cnn,
    counting_tokens,
    diabetes_loaders,
)
from helpers import Classifier, digits, digits_loaders, events, fit, loader, read_report, serious
from lightning.pytorch.demos import LightningTransformer
from torch import nn

from lightning_sanity import images
from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(model, tmp_path, train=None, val=None, max_epochs=3, facts=None, budget=None, **options):
    # The cadence tests want every snapshot the cadence asks for: no time budget.
    L.seed_everything(0)
    trainer_kwargs = {k: options.pop(k) for k in list(options) if not k.startswith("predictions") and k not in (
        "get_input", "get_target")}
    callbacks = ([facts] if facts else []) + [PredictionDynamics(**options),
                                              SanitySummary(print_summary=False, periodic_budget=budget)]
    trainer = fit(model, tmp_path, train, val, callbacks=callbacks, max_epochs=max_epochs, **trainer_kwargs)
    return trainer, read_report(trainer.log_dir)


def _check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


def _only(report, check):
    found = serious(report, check)
    assert len(found) == 1, (report["findings"], [c for c in report["checks"] if c["name"] == check])
    return found[0]


def _pixels(image_event) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)).convert("RGB"))


def _size(image_event) -> tuple[int, int]:
    return image_event.width, image_event.height


def _row_starts(image_event) -> list[int]:
    """The pixel rows of a chart's plot area where a new band (sample) starts."""
    plot = images.plot_area(_pixels(image_event)).astype(int)
    return [0] + [int(i) + 1 for i in np.nonzero(np.any(plot[1:] != plot[:-1], axis=(1, 2)))[0]]


def _shows_samples(image_event, samples: int) -> bool:
    """The plot area is cut in ``samples`` equal bands (neighbours of the same colour merge: most of them)."""
    starts = _row_starts(image_event)
    return all(r % (images.PLOT_H // samples) == 0 for r in starts) and len(starts) > samples // 2


# --------------------------------------------------------------------------- charts and history


def test_classification_charts_and_history(tmp_path):
    trainer, report = _run(Classifier(lr=1e-2), tmp_path)
    assert not serious(report), report["findings"]
    assert _check(report, "prediction-jitter")["status"] == "pass"
    assert "64 validation samples" in _check(report, "prediction-jitter")["detail"]

    acc = events(trainer.log_dir)
    probs = acc.Images("sanity/predictions/probabilities")
    assert _size(probs[-1]) == images.IMAGE_SIZE and _shows_samples(probs[-1], 64)  # samples x classes
    over_time = acc.Images("sanity/predictions/true_class_over_time")
    assert all(_size(e) == images.IMAGE_SIZE for e in over_time)
    # The picture of learning: the last column (end of training) is brighter than the first (init).
    pixels = images.plot_area(_pixels(over_time[-1])).astype(float).sum(-1)
    assert pixels[:, -1].mean() > pixels[:, 0].mean() + 100
    assert {"sanity/predictions/outputs", "sanity/predictions/true_class_probability"} <= set(acc.Tags()["histograms"])

    accuracy = [e.value for e in acc.Scalars("sanity/predictions/accuracy")]
    loss = [e.value for e in acc.Scalars("sanity/predictions/loss")]
    assert accuracy[0] < 0.3 and accuracy[-1] > 0.7
    assert loss[0] == pytest.approx(np.log(10), abs=0.3) and loss[-1] < loss[0] / 2
    flips = [e.value for e in acc.Scalars("sanity/predictions/flip_fraction")]
    change = acc.Scalars("sanity/predictions/mean_change")
    assert len(flips) == len(change) == len(accuracy) - 1 and all(0 <= f <= 1 for f in flips)
    assert [e.step for e in change] == sorted(e.step for e in change)

    history = np.load(tmp_path / "logs" / "version_0" / "sanity" / "predictions.npz")
    snapshots = len(history["step"])
    assert snapshots == len(over_time) and history["step"][0] == 0
    assert history["true_class_probability"].shape == (snapshots, 64)
    assert history["predicted_class"].shape == (snapshots, 64)
    assert history["probabilities"].shape == (64, 10) and history["target"].shape == (64,)
    assert str(history["kind"]) == "classification" and str(history["source"]) == "validation"
    np.testing.assert_allclose(history["accuracy"], accuracy, rtol=1e-5)


def test_regression_charts(tmp_path):
    train, val = diabetes_loaders()
    trainer, report = _run(Regressor(), tmp_path, train, val, max_epochs=4)
    assert not serious(report), report["findings"]
    acc = events(trainer.log_dir)
    scatter = acc.Images("sanity/predictions/prediction_vs_target")
    assert _size(scatter[-1]) == images.IMAGE_SIZE
    pixels = images.plot_area(_pixels(scatter[-1])).astype(int)
    lit = (np.ptp(pixels, axis=-1) > 40).sum()  # samples drawn in colour on the dark background, not the grey diagonal
    assert lit >= 10 * 9  # each pixel of the 64 x 64 scatter is at least 3 x 3 plot pixels
    assert "sanity/predictions/true_class_over_time" not in acc.Tags()["images"]
    assert "sanity/predictions/residuals" in acc.Tags()["histograms"]
    mse = [e.value for e in acc.Scalars("sanity/predictions/loss")]
    assert mse[-1] < mse[0]
    assert len(acc.Scalars("sanity/predictions/mean_change")) == len(mse) - 1


def test_sequence_outputs_give_per_token_charts(tmp_path):
    x, y = counting_tokens()
    trainer, report = _run(TinyLM(), tmp_path, loader(x[:448], y[:448], 32),
                           loader(x[448:], y[448:], 32, shuffle=False), max_epochs=2, facts=FactsFromInitialLoss("nll", 16))
    assert not serious(report), report["findings"]
    acc = events(trainer.log_dir)
    image = acc.Images("sanity/predictions/probabilities")[-1]
    assert _size(image) == images.IMAGE_SIZE  # samples x tokens
    token_accuracy = [e.value for e in acc.Scalars("sanity/predictions/accuracy")]
    assert token_accuracy[-1] > 0.9 > token_accuracy[0]
    assert "(sequence)" in _check(report, "prediction-jitter")["detail"]


def test_user_batch_size_cap_and_epoch_end_cadence(tmp_path):
    x, y = digits(100)
    train, _ = digits_loaders()
    trainer, report = _run(Classifier(), tmp_path, train, None, max_epochs=2,
                           predictions_batch=(x, y), predictions_batch_size=16, predictions_every_n_steps=0)
    acc = events(trainer.log_dir)
    charts = acc.Images("sanity/predictions/probabilities")
    assert [e.step for e in charts] == [0, 23, 46]  # init and each epoch end
    assert _shows_samples(charts[-1], 16)
    assert "16 user samples" in _check(report, "prediction-jitter")["detail"]


def test_first_training_batch_without_validation(tmp_path):
    train, _ = digits_loaders()
    trainer, report = _run(Classifier(), tmp_path, train, None, max_epochs=2)
    assert "64 training samples" in _check(report, "prediction-jitter")["detail"]


def test_forward_that_takes_the_batch_parts_is_called_as_training_step_calls_it(tmp_path):
    # The demo's forward is forward(inputs, target): one rule for every fixed-batch check (lightning_sanity.forward)
    # calls it with the batch's parts, as its training_step does, so prediction-jitter runs like the flow checks.
    x, y = counting_tokens()
    model = _OfflineTransformer(vocab_size=16)
    trainer, report = _run(model, tmp_path, loader(x[:128], y[:128], 32), None, max_epochs=1)
    check = _check(report, "prediction-jitter")
    assert check["status"] != "skipped" and "snapshots" in check["detail"], check


class _TwoInputClassifier(Classifier):
    def forward(self, x, mask, scale):  # binds neither the input alone nor the (x, y) batch
        return self.net(x * mask * scale)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x, torch.ones_like(x), 1.0), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x, torch.ones_like(x), 1.0), y))


def test_forward_that_binds_no_call_is_skipped_with_the_reason(tmp_path):
    trainer, report = _run(_TwoInputClassifier(), tmp_path, max_epochs=1)
    check = _check(report, "prediction-jitter")
    assert check["status"] == "skipped" and "forward_fn" in check["detail"] and "forward(x, mask, scale)" in \
        check["detail"], check
    assert not serious(report)


class _OfflineTransformer(LightningTransformer):
    def prepare_data(self) -> None:  # the demo downloads WikiText2 here; these tests bring their own tokens
        pass


# --------------------------------------------------------------------------- findings


def test_too_high_learning_rate_is_prediction_jitter(tmp_path):
    _, report = _run(Classifier(lr=1.0, optimizer="sgd"), tmp_path, max_epochs=4)
    finding = _only(report, "prediction-jitter")
    assert finding["severity"] == "warning" and finding["where"] is None
    assert finding["data"]["late_median"] >= 0.3
    assert "Lower the learning rate by 3-10x" in finding["advice"]


def test_functional_dropout_in_eval_is_train_mode(tmp_path):
    net = nn.Sequential(DropoutBlock(64, 32), nn.Linear(32, 10))
    _, report = _run(Classifier(net=net), tmp_path, max_epochs=1)
    finding = _only(report, "train-mode")
    assert finding["severity"] == "warning" and finding["where"] == "net.0"
    assert finding["data"]["max_abs_difference"] > 0


def test_sampling_in_eval_is_only_info(tmp_path):
    # A VAE-style layer samples with randn_like in eval mode on purpose: worth knowing, not a warning.
    net = nn.Sequential(SamplingBlock(64, 32), nn.Linear(32, 10))
    _, report = _run(Classifier(net=net), tmp_path, max_epochs=1)
    assert not serious(report, "train-mode"), report["findings"]
    infos = [f for f in report["findings"] if f["check"] == "train-mode"]
    assert len(infos) == 1 and infos[0]["severity"] == "info" and infos[0]["where"] == "net.0"
    assert infos[0]["data"]["source"] == "sampling"


def test_autoencoder_without_targets_is_not_read_as_classes(tmp_path):
    # Bare pixel batches and 64 reconstructed pixels: no class evidence, so no flips and no jitter judgement.
    x, _ = digits(640)
    train = torch.utils.data.DataLoader(x, batch_size=32, shuffle=True)
    _, report = _run(Autoencoder(lr=3e-2), tmp_path, train, None, max_epochs=4, limit_val_batches=0)
    assert not serious(report), report["findings"]
    check = _check(report, "prediction-jitter")
    assert check["status"] == "skipped" and "no targets" in check["detail"]


def test_short_run_snapshots_off_the_logging_steps(tmp_path):
    # 120 planned steps logging every 50: aligned snapshots would be 2, too few to judge; every 5 steps instead.
    trainer, _ = _run(Classifier(), tmp_path, *digits_loaders(n=640), max_epochs=15, log_every_n_steps=50)
    steps = np.load(f"{trainer.log_dir}/sanity/predictions.npz")["step"].tolist()
    assert trainer.global_step == 120 and len(steps) >= 24 and 5 in steps and 10 in steps, steps


def test_stochastic_model_run_is_not_changed_by_the_snapshots(tmp_path):
    def weights(callbacks, folder):
        L.seed_everything(0)
        x, y = digits(600)
        train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:480], y[:480]), batch_size=32,
                                            shuffle=True)
        val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[480:], y[480:]), batch_size=32)
        net = nn.Sequential(DropoutBlock(64, 32), nn.BatchNorm1d(32), nn.Linear(32, 10))
        model = Classifier(net=net)
        fit(model, tmp_path / folder, train, val, callbacks=callbacks, max_epochs=2)
        return model.state_dict()

    bare = weights([], "bare")
    watched = weights([PredictionDynamics(predictions_every_n_steps=3), SanitySummary(print_summary=False)], "watched")
    for name in bare:
        assert torch.equal(bare[name], watched[name]), name


def test_output_that_stops_depending_on_the_input_is_constant_output(tmp_path):
    _, report = _run(GateClosesAfterStart(), tmp_path, max_epochs=2)
    finding = _only(report, "constant-output")
    assert finding["severity"] == "warning" and finding["where"] == "gate"
    assert finding["global_step"] > 5


def test_non_finite_predictions_are_reported(tmp_path):
    class EvalNaN(Classifier):
        def forward(self, x):
            out = self.net(x)
            return out if self.training else out + float("nan")

    _, report = _run(EvalNaN(), tmp_path, max_epochs=1)
    finding = _only(report, "non-finite")
    assert finding["severity"] == "error" and finding["where"] == "fixed-batch predictions"


# --------------------------------------------------------------------------- healthy runs stay silent


@pytest.mark.parametrize("kind", ["cnn", "lstm", "dropout", "sgd"])
def test_healthy_runs_are_silent(tmp_path, kind):
    model = {
        "cnn": lambda: Classifier(net=cnn(), lr=3e-3),
        "lstm": lambda: Classifier(net=RowLSTM(), lr=1e-2),
        "dropout": lambda: Classifier(net=nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.7),
                                                        nn.Linear(128, 10)), lr=3e-3),
        "sgd": lambda: Classifier(lr=0.1, optimizer="sgd"),
    }[kind]()
    _, report = _run(model, tmp_path, max_epochs=4)
    assert not serious(report), report["findings"]
    assert _check(report, "prediction-jitter")["status"] == "pass"


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="predictions_batch_size"):
        PredictionDynamics(predictions_batch_size=0)
    with pytest.raises(ValueError, match="predictions_every_n_steps"):
        PredictionDynamics(predictions_every_n_steps=-1)
    with pytest.raises(ValueError, match="predictions_batch"):
        PredictionDynamics(predictions_batch=["no tensor"])
    with pytest.raises(ValueError, match="forward_fn"):
        PredictionDynamics(forward_fn="forward")


class _SlowInEval(nn.Module):
    """A layer that costs 20 ms per call in eval mode only: the fixed-batch snapshots are expensive."""

    def forward(self, x):
        if not self.training:
            time.sleep(0.02)
        return x


def test_expensive_snapshots_stay_within_the_budget_and_say_so(tmp_path):
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), _SlowInEval(), nn.Linear(32, 10))
    trainer, report = _run(Classifier(net=net), tmp_path, *digits_loaders(n=640), max_epochs=15, budget=0.02)
    steps = np.load(f"{trainer.log_dir}/sanity/predictions.npz")["step"].tolist()
    # The cadence asks for 24+ snapshots (see above); the budget keeps the 10 that jitter needs (the first, then 2 x 4
    # changes and one spare), spread over the run.
    assert 10 <= len(steps) < 16 and steps[-1] >= 100, steps
    detail = _check(report, "prediction-jitter")["detail"]
    assert "left out to keep within the periodic-work budget" in detail, detail
    cost = report["cost"]
    assert cost["periodic_seconds"] <= cost["suite_seconds"] < cost["fit_seconds"]


def test_short_run_follows_fewer_samples_unless_the_size_is_given(tmp_path):
    # 16 planned steps of 64 samples: the 10 required snapshots of 64 samples would take about a sixth of the
    # training; the budget (2 %) affords the fewest, 24. An explicit size is kept as given.
    train, val = digits_loaders(n=640)
    _, report = _run(Classifier(), tmp_path / "auto", train, val, max_epochs=2, budget=0.02)
    assert "24 validation samples" in _check(report, "prediction-jitter")["detail"]
    _, report = _run(Classifier(), tmp_path / "given", train, val, max_epochs=2, budget=0.02,
                     predictions_batch_size=64)
    assert "64 validation samples" in _check(report, "prediction-jitter")["detail"]
    # No budget (or an unknown length): the whole default.
    _, report = _run(Classifier(), tmp_path / "unbudgeted", train, val, max_epochs=2)
    assert "64 validation samples" in _check(report, "prediction-jitter")["detail"]


def test_samples_for_run_follows_the_planned_length():
    from lightning_sanity.callbacks._snapshot_plan import samples_for_run

    assert samples_for_run(60, 64, 0.02) == 24  # the benchmark's short CNN run
    assert samples_for_run(100, 64, 0.02) == 38
    assert samples_for_run(400, 64, 0.02) == 64
    assert samples_for_run(400, 64, None) == samples_for_run(None, 64, 0.02) == 64
