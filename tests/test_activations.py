"""ActivationMonitor on real Trainer runs: dead ReLUs and saturated tanh fire, healthy nets and a sigmoid output
stay silent, hooks exist only on measuring batches and are removed when training raises."""

import lightning as L
import pytest
import torch
from _models_norms import cnn, mlp, scaled_digits
from helpers import Classifier, CrashingClassifier, breast_cancer, digits_loaders, events, fit, loader, read_report, serious, trainer
from torch import nn

from lightning_sanity.callbacks.activations import ActivationMonitor
from lightning_sanity.callbacks.summary import SanitySummary


def _run(model, tmp_path, monitor=None, **kwargs):
    L.seed_everything(0)
    monitor = monitor or ActivationMonitor()
    kwargs.setdefault("max_epochs", 1)
    t = fit(model, tmp_path, callbacks=[monitor, SanitySummary(print_summary=False)], **kwargs)
    return read_report(t.log_dir), t, monitor


def test_dead_relu_from_a_large_negative_bias(tmp_path):
    net = mlp(2)
    with torch.no_grad():
        net[0].bias.fill_(-10.0)
    report, t, _ = _run(Classifier(net=net), tmp_path)
    (finding,) = serious(report, "dead-activations")
    assert finding["severity"] == "warning" and finding["where"] == "net.1"
    assert finding["data"]["kind"] == "dead" and finding["data"]["fraction"] == 1.0
    assert finding["global_step"] is not None and finding["batch_idx"] == 1  # second measurement (23 planned steps: every step, see cadence)
    assert "sanity/dead_fraction/net.1" in events(t.log_dir).Tags()["scalars"]


def test_saturated_tanh_from_unscaled_inputs(tmp_path):
    train, val = scaled_digits(100.0)
    report, t, _ = _run(Classifier(net=mlp(2, act=nn.Tanh)), tmp_path, train=train, val=val)
    (finding,) = serious(report, "dead-activations")
    assert finding["where"] == "net.1" and finding["data"]["kind"] == "saturated" and finding["data"]["fraction"] > 0.9
    assert "sanity/saturated_fraction/net.1" in events(t.log_dir).Tags()["scalars"]


@pytest.mark.parametrize("net", [lambda: mlp(3), lambda: cnn(), lambda: mlp(3, act=nn.Tanh), lambda: mlp(2, act=nn.GELU)])
def test_healthy_nets_are_silent(tmp_path, net):
    report, _, monitor = _run(Classifier(net=net()), tmp_path)
    assert not serious(report, "dead-activations")
    assert monitor._measurements >= 4


def test_confident_sigmoid_output_is_not_saturation(tmp_path):
    x, y = breast_cancer()

    class Binary(Classifier):
        def forward(self, x):
            return self.net(x).squeeze(-1)

    net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    model = Binary(net=net, loss_fn=nn.functional.binary_cross_entropy, lr=3e-2)
    report, _, monitor = _run(model, tmp_path, train=loader(x, y, 32), val=loader(x, y, 64, False), max_epochs=4)
    assert not serious(report, "dead-activations")
    assert "net.3" not in monitor._history  # the output sigmoid is not judged


def test_shared_activation_module_is_measured_per_call(tmp_path):
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 10)
            self.act = nn.ReLU()
            with torch.no_grad():
                self.b.bias.fill_(-10.0)

        def forward(self, x):
            return self.c(self.act(self.b(self.act(self.a(x)))))

    report, _, _ = _run(Classifier(net=Shared()), tmp_path)
    (finding,) = serious(report, "dead-activations")
    assert finding["where"] == "net.act" and finding["data"]["call"] == "net.act#2"


def test_hooks_only_on_measuring_batches_and_removed_when_training_raises(tmp_path):
    class Spy(L.Callback):
        def __init__(self):
            self.hooked = {}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.hooked[batch_idx] = bool(pl_module.net[1]._forward_hooks)

    spy = Spy()
    monitor = ActivationMonitor(activations_every_n_steps=3)
    model = CrashingClassifier(RuntimeError("boom"), at_step=5)  # batch 5 is a measuring batch
    t = trainer(tmp_path, [spy, monitor, SanitySummary(print_summary=False)])  # spy's end hook runs before the monitor's
    with pytest.raises(RuntimeError, match="boom"):
        t.fit(model, *digits_loaders())
    assert spy.hooked == {0: True, 1: False, 2: True, 3: False, 4: False}
    assert not any(m._forward_hooks for m in model.modules())  # removed on the exception, mid-measurement


def test_bad_argument():
    with pytest.raises(ValueError, match="activations_every_n_steps"):
        ActivationMonitor(activations_every_n_steps=0)


def test_no_activation_modules_is_skipped(tmp_path):
    report, _, _ = _run(Classifier(net=nn.Linear(64, 10)), tmp_path, limit_train_batches=2)
    (check,) = [c for c in report["checks"] if c["name"] == "dead-activations"]
    assert check["status"] == "skipped" and "no activation modules" in check["detail"]


@pytest.mark.parametrize("target", ["standardized", "raw"])
@pytest.mark.parametrize("output_relu", [True, False])
def test_relu_on_a_regression_output_fires_only_when_targets_are_out_of_its_reach(tmp_path, target, output_relu):
    # A ReLU copied after the last Linear of a regression head: with standardized targets (half of them negative)
    # ~40 % of the targets' variance is out of its reach; with the raw, positive diabetes targets, or without the
    # ReLU, every target can be reached.
    import lightning_sanity
    from helpers import diabetes

    x, y = diabetes()
    y = (y - y.mean()) / y.std() if target == "standardized" else y / 100
    layers = [nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1)] + ([nn.ReLU()] if output_relu else [])
    model = Classifier(net=nn.Sequential(*layers, nn.Flatten(0)), lr=3e-3, loss_fn=nn.functional.mse_loss)
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=2)
    t.fit(model, loader(x, y, 32))
    found = [f for f in serious(read_report(t.log_dir), "dead-activations") if f["data"]["kind"] == "output-range"]
    if output_relu and target == "standardized":
        assert found and found[0]["where"] == "net.3" and found[0]["data"]["unreachable_share"] > 0.3
        assert "Remove the activation" in found[0]["advice"]
    else:
        assert not found


class NewGELUActivation(nn.Module):
    """HuggingFace's GPT-2 activation as ``transformers.activations`` writes it: not a subclass of ``nn.GELU``."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 * torch.pow(x, 3.0))))


@pytest.mark.parametrize("dead", [True, False])
def test_library_activation_classes_are_measured(tmp_path, dead):
    net = mlp(2, act=NewGELUActivation)
    if dead:  # a pre-activation far below zero on every sample: GELU's output is never positive
        with torch.no_grad():
            net[0].bias.fill_(-10.0)
    report, _, monitor = _run(Classifier(net=net), tmp_path)
    found = serious(report, "dead-activations")
    if dead:
        assert [f["where"] for f in found] == ["net.1"] and found[0]["data"]["kind"] == "dead"
    else:
        assert not found and monitor._measurements >= 4
