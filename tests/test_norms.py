"""NormMonitor on real Trainer runs: each bug fires its check, healthy runs of many kinds stay silent,
the TensorBoard tags and custom-scalars layout are read back from the event files."""

import warnings

import lightning as L
import pytest
import torch
from _models_norms import (
    Cosine,
    CorruptBatch,
    Encoded,
    FrozenBackbone,
    GrowingWeights,
    ManualTwoOptimizers,
    ResidualStack,
    RowLSTM,
    Tokens,
    WithUnusedHead,
    ZeroLoss,
    cnn,
    deep_linear,
    layer_scale_cnn,
    mlp,
)
from helpers import Classifier, events, fit, read_report, serious
from torch import nn

from lightning_sanity.callbacks.activations import ActivationMonitor
from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary

MINE = ("dead-gradient", "vanishing-gradient", "exploding-gradient", "weight-growth", "update-ratio", "dead-activations")


def _run(model, tmp_path, monitor=None, **kwargs):
    L.seed_everything(0)
    monitor = monitor or NormMonitor()
    callbacks = [monitor, ActivationMonitor(), SanitySummary(print_summary=False)]
    kwargs.setdefault("max_epochs", 1)
    t = fit(model, tmp_path, callbacks=callbacks, **kwargs)
    return read_report(t.log_dir), t, monitor


def _only(report, check):
    found = serious(report, check)
    assert len(found) == 1, [f["message"] for f in serious(report)]
    return found[0]


# --------------------------------------------------------------------------- bugs fire


@pytest.mark.parametrize("mode", ["detach", "argmax"])
def test_dead_gradient_names_encoder_cut_off_from_the_loss(tmp_path, mode):
    report, _, _ = _run(Encoded(mode=mode), tmp_path)
    finding = _only(report, "dead-gradient")
    assert finding["severity"] == "warning" and finding["where"] == "encoder"
    assert finding["data"]["layers"] == ["encoder.0", "encoder.2"] and finding["data"]["kind"] == "missing"
    assert finding["global_step"] == 0 and finding["epoch"] == 0 and finding["batch_idx"] == 0
    assert "detach" in finding["advice"]


@pytest.mark.parametrize("mode", ["detach", "item", "dropped"])
def test_dead_gradient_output_cut_or_dropped_in_every_block_is_a_warning(tmp_path, mode):
    finding = _only(_run(ResidualStack(mode=mode), tmp_path)[0], "dead-gradient")
    layers = ["blocks.0.backcast", "blocks.1.backcast", "blocks.2.backcast"] if mode == "dropped" else ["blocks.2.backcast"]
    assert finding["data"]["layers"] == layers and finding["data"]["kind"] == "missing"


def test_dead_gradient_output_nothing_uses_is_info(tmp_path):
    report, _, _ = _run(ResidualStack(), tmp_path)
    assert not serious(report)
    (info,) = [f for f in report["findings"] if f["check"] == "dead-gradient"]
    assert info["severity"] == "info" and info["where"] == "blocks.2.backcast" and info["data"]["kind"] == "unconsumed"


def test_dead_gradient_zero_gradient_through_round(tmp_path):
    finding = _only(_run(Encoded(mode="round"), tmp_path)[0], "dead-gradient")
    assert finding["severity"] == "warning" and finding["where"] == "encoder" and finding["data"]["kind"] == "zero"


def test_dead_gradient_error_when_the_loss_is_multiplied_by_zero(tmp_path):
    finding = _only(_run(ZeroLoss(), tmp_path)[0], "dead-gradient")
    assert finding["severity"] == "error" and finding["where"] is None
    assert finding["data"]["layers"] == ["net.0", "net.2"]


def test_layer_used_only_in_validation_is_info_not_warning(tmp_path):
    report, _, _ = _run(WithUnusedHead(), tmp_path)
    assert not serious(report)
    (info,) = [f for f in report["findings"] if f["check"] == "dead-gradient"]
    assert info["severity"] == "info" and info["where"] == "aux" and info["data"]["kind"] == "unused"


def test_vanishing_gradient_names_early_layers_of_deep_sigmoid_mlp(tmp_path):
    report, _, _ = _run(Classifier(net=mlp(10, act=nn.Sigmoid), lr=1e-3), tmp_path)
    finding = _only(report, "vanishing-gradient")
    assert finding["severity"] == "warning" and finding["where"] == "net"
    layers = finding["data"]["layers"]
    assert layers[0] == "net.0" and "net.20" not in layers and finding["data"]["reference_layer"] == "net.20"
    assert not serious(report, "update-ratio")  # the frozen-looking layers are vanishing's, not update-ratio's


def test_exploding_gradient_spike_before_non_finite(tmp_path):
    report, _, _ = _run(CorruptBatch(at_step=15), tmp_path)
    finding = _only(report, "exploding-gradient")
    assert finding["severity"] == "warning" and finding["global_step"] == 15 and finding["where"] == "net.2"
    assert finding["data"]["kind"] == "spike" and finding["data"]["factor"] > 1e3


def test_exploding_gradient_on_a_diverging_deep_net(tmp_path):
    report, _, _ = _run(Classifier(net=deep_linear(), lr=0.05, optimizer="sgd"), tmp_path, max_epochs=2)
    finding = _only(report, "exploding-gradient")
    assert finding["where"].startswith("net.") and finding["global_step"] < 35


def test_weight_growth_with_a_loss_rewarding_large_weights(tmp_path):
    finding = _only(_run(GrowingWeights(lr=3e-2), tmp_path, max_epochs=2)[0], "weight-growth")
    assert finding["severity"] == "warning" and finding["where"] == "net.0" and finding["data"]["factor"] > 10


def test_update_ratio_too_large_with_sgd_lr_10(tmp_path):
    report, _, _ = _run(Classifier(lr=10.0, optimizer="sgd"), tmp_path, limit_train_batches=8)
    finding = _only(report, "update-ratio")
    assert finding["severity"] == "warning" and finding["data"]["kind"] == "too_large" and finding["where"] == "net"
    assert finding["data"]["ratio"] >= 1.0


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_update_ratio_too_small_with_lr_1e_10(tmp_path, optimizer):
    finding = _only(_run(Classifier(lr=1e-10, optimizer=optimizer), tmp_path)[0], "update-ratio")
    assert finding["data"]["kind"] == "too_small" and finding["data"]["layers"] == ["net.0", "net.2"]


# --------------------------------------------------------------------------- healthy runs stay silent


def _silent(report):
    assert not [f for f in serious(report) if f["check"] in MINE], [f["message"] for f in serious(report)]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert all(statuses[c] == "pass" for c in MINE if c != "dead-activations"), statuses


@pytest.mark.parametrize(
    "name, build, kwargs",
    [
        ("mlp-adam", lambda: Classifier(), {}),
        ("mlp-sgd", lambda: Classifier(net=mlp(3), optimizer="sgd", lr=0.1), {}),
        ("cnn-batchnorm", lambda: Classifier(net=cnn()), {}),
        ("lstm", lambda: Classifier(net=RowLSTM()), {}),
        ("frozen-backbone", lambda: FrozenBackbone(), {}),
        ("clip-accumulate", lambda: Classifier(net=mlp(2), optimizer="sgd", lr=0.05),
         {"max_epochs": 2, "gradient_clip_val": 0.5, "accumulate_grad_batches": 3}),
        ("manual-two-optimizers", lambda: ManualTwoOptimizers(), {}),
        ("cosine-to-zero", lambda: Cosine(steps=23, lr=1e-2), {}),
        ("bf16-mixed", lambda: Classifier(net=mlp(2)), {"precision": "bf16-mixed"}),
        ("tanh", lambda: Classifier(net=mlp(3, act=nn.Tanh)), {}),
        # A layer scale starting at 1e-6 moves by many times itself on every step: a vector's update, not a matrix's.
        ("layer-scale", lambda: Classifier(net=layer_scale_cnn(), lr=4e-3), {"max_epochs": 2}),
    ],
)
def test_healthy_runs_are_silent(tmp_path, name, build, kwargs):
    _silent(_run(build(), tmp_path, **kwargs)[0])


def test_healthy_transformer_is_silent(tmp_path):
    model = Tokens()
    report, _, monitor = _run(model, tmp_path, train=model.train_dataloader(), val=None, limit_val_batches=0, max_epochs=2)
    _silent(report)
    assert "model.transformer.encoder.layers.0.self_attn" in monitor.layers.names


# --------------------------------------------------------------------------- TensorBoard, options, robustness


def test_tensorboard_tags_and_custom_scalars_layout(tmp_path):
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.util import tensor_util

    _, t, _ = _run(Classifier(), tmp_path, log_every_n_steps=5)
    acc = events(t.log_dir)
    scalars = set(acc.Tags()["scalars"])
    for quantity in ("grad_norm", "weight_norm", "update_ratio"):
        assert {f"sanity/{quantity}/net.0", f"sanity/{quantity}/net.2"} <= scalars
    assert {"sanity/grad_norm/global", "sanity/weight_norm/global", "sanity/dead_fraction/net.1"} <= scalars
    steps = [e.step for e in acc.Scalars("sanity/grad_norm/net.0")]
    # A 23-step run at log_every_n_steps=5 would chart 4 points: the cadence follows the planned length
    # (lightning_sanity.cadence) and charts every step, each at the step whose gradients it is.
    assert steps == list(range(23))
    assert all(e.value > 0 for e in acc.Scalars("sanity/update_ratio/net.0"))
    config = acc.Tensors("custom_scalars__config__")[-1]  # the latest layout: rewritten as charts gain data
    layout = layout_pb2.Layout.FromString(tensor_util.make_ndarray(config.tensor_proto).item())
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts["gradient L2 norm per layer (pre-clip)"] == ["sanity/grad_norm/.*"]
    assert charts["update ratio ||dw||/||w|| per layer"] == ["sanity/update_ratio/.*"]
    assert "dead units per layer" in charts


def test_grouping_caps_tags_but_judges_per_layer(tmp_path):
    net = nn.Sequential(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32)), nn.ReLU(), nn.Linear(32, 10))
    _, t, monitor = _run(Classifier(net=net), tmp_path, monitor=NormMonitor(norms_max_tags=2), log_every_n_steps=5)
    assert monitor.layers.groups == ("net.0", "net.2") and len(monitor.layers.names) == 3
    scalars = set(events(t.log_dir).Tags()["scalars"])
    assert "sanity/grad_norm/net.0" in scalars and "sanity/grad_norm/net.0.0" not in scalars


def test_histograms_when_asked(tmp_path):
    _, t, _ = _run(Classifier(), tmp_path, monitor=NormMonitor(norms_histogram_every_n_steps=10), limit_train_batches=11)
    histograms = set(events(t.log_dir).Tags()["histograms"])
    assert {"sanity/grad_hist/net.0", "sanity/weight_hist/net.2"} <= histograms


def _linear_weight_sq(model):
    """The squared weight norm (all parameters) of each Linear layer, in module order."""
    return [sum(float(p.detach().square().sum()) for p in m.parameters()) for m in model.modules() if isinstance(m, nn.Linear)]


class _WeightWitness(L.Callback):
    """The squared weight norm of each Linear layer in every optimizer step, before the update."""

    def __init__(self):
        self.rows = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.rows.append(_linear_weight_sq(pl_module))


def test_weight_norms_are_read_on_measuring_steps_and_carried_between(tmp_path):
    witness, monitor = _WeightWitness(), NormMonitor(norms_log_every_n_steps=4)
    L.seed_everything(0)
    t = fit(Classifier(), tmp_path, callbacks=[witness, monitor], max_epochs=2)
    monitor._flush(t, log=False)  # the rows still buffered (chart points read their own row only)
    held = torch.cat(monitor._history.weight)  # layers in module order: net.0, net.2
    steps = len(held)
    truth = torch.tensor(witness.rows[:steps], dtype=torch.float64)
    assert held.shape == truth.shape == (steps, 2) and steps > 40
    measured = [i for i in range(steps) if i < 10 or (i + 1) % 4 == 0]  # the first 10 steps, then logging steps
    for i in range(steps):
        source = i if i in measured else max(j for j in measured if j < i)
        assert torch.allclose(held[i], truth[source], rtol=1e-5), (i, source)
    assert not torch.allclose(truth[12], truth[11], rtol=1e-5)  # weights did move: carrying is visible


def test_weights_are_read_once_more_at_the_end_of_fit(tmp_path):
    monitor = NormMonitor(norms_log_every_n_steps=50)
    L.seed_everything(0)
    model = Classifier()
    fit(model, tmp_path, callbacks=[monitor, SanitySummary(print_summary=False)], max_epochs=1, limit_train_batches=18)
    held = torch.cat(monitor._history.weight)
    final = torch.tensor(_linear_weight_sq(model), dtype=torch.float64)  # net.0, net.2
    assert len(held) == 18 and torch.allclose(held[-1], final, rtol=1e-5)  # not the reading of step 9, carried
    assert not torch.allclose(held[-2], final, rtol=1e-5)


def test_no_update_copy_when_switched_off(tmp_path):
    report, _, _ = _run(Classifier(lr=10.0, optimizer="sgd"), tmp_path, monitor=NormMonitor(norms_update_ratio=False),
                        limit_train_batches=8)
    (check,) = [c for c in report["checks"] if c["name"] == "update-ratio"]
    assert check["status"] == "skipped" and "norms_update_ratio=False" in check["detail"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"norms_log_every_n_steps": -1}, "norms_log_every_n_steps"),
        ({"norms_group_depth": 0}, "norms_group_depth"),
        ({"norms_group_regex": "("}, "norms_group_regex"),
        ({"norms_max_tags": "many"}, "norms_max_tags"),
        ({"norms_update_ratio": "yes"}, "norms_update_ratio"),
        ({"norms_histogram_every_n_steps": 1.5}, "norms_histogram_every_n_steps"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NormMonitor(**kwargs)


def test_options_reach_default_callbacks():
    import lightning_sanity

    callbacks = lightning_sanity.default_callbacks(norms_max_tags=7, activations_every_n_steps=3, print_summary=False)
    (monitor,) = [c for c in callbacks if isinstance(c, NormMonitor)]
    (activations,) = [c for c in callbacks if isinstance(c, ActivationMonitor)]
    assert monitor.max_tags == 7 and activations.every_n_steps == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_non_logging_steps_add_no_cuda_synchronisation(tmp_path):
    """Per training batch, count CUDA sync warnings with and without the monitors: equal on non-logging steps."""

    class SyncCounter(L.Callback):
        def __init__(self, records):
            self.records, self.per_batch, self._start = records, {}, 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            torch.cuda.synchronize()
            self._start = len(self.records)
            torch.cuda.set_sync_debug_mode("warn")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            torch.cuda.set_sync_debug_mode("default")
            self.per_batch[batch_idx] = len(self.records) - self._start

    def run(callbacks, folder):
        L.seed_everything(0)
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            counter = SyncCounter(records)
            # the counter goes first and last: its start runs before the monitors' start hooks, its end after theirs
            fit(Classifier(net=cnn()), tmp_path / folder, callbacks=[*callbacks, counter], accelerator="cuda",
                max_epochs=1, log_every_n_steps=5, limit_val_batches=0)
        return counter.per_batch

    bare = run([], "bare")
    watched = run([NormMonitor(), ActivationMonitor(), SanitySummary(print_summary=False)], "watched")
    non_logging = [b for b in bare if (b + 1) % 5 != 0]
    assert {b: watched[b] for b in non_logging} == {b: bare[b] for b in non_logging}
