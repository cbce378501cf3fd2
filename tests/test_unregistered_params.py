"""optimizer-coverage on parameters the loss reaches that the LightningModule does not own, in real Trainer runs:
hidden layers kept in a plain Python list fire; the same layers in `nn.ModuleList`, a frozen teacher kept outside the
module, a teacher in eval mode that still requires grad (info only) and a gradient penalty on a plain
`requires_grad` tensor stay silent."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.checks.unregistered import hidden_parameters, unregistered_in_graph


class ListMLP(L.LightningModule):
    """Two hidden layers and a head on digits; `registered=False` keeps the hidden layers in a plain list."""

    def __init__(self, registered: bool):
        super().__init__()
        hidden = [nn.Linear(64, 32), nn.Linear(32, 32)]
        self.hidden = nn.ModuleList(hidden) if registered else hidden
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.head(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class Distill(L.LightningModule):
    """A student fitted to a teacher kept outside the module (`self._teacher = [net]`, so it is not saved)."""

    def __init__(self, frozen: bool):
        super().__init__()
        teacher = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
        teacher.requires_grad_(not frozen)
        self._teacher = [teacher]
        self.student = nn.Linear(64, 10)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        soft = self._teacher[0](x).softmax(-1)  # not detached: a teacher that requires grad gets a gradient
        return F.kl_div(self.student(x).log_softmax(-1), soft, reduction="batchmean")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class GradientPenalty(L.LightningModule):
    """A critic-style penalty on a plain tensor that requires grad (a WGAN-GP interpolate): not a parameter."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        mix = (0.5 * x + 0.5 * x.flip(0)).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.net(mix).sum(), mix, create_graph=True)
        penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
        return F.mse_loss(self.net(x).squeeze(-1), y.float() / 9) + penalty

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _run(tmp_path, model):
    L.seed_everything(0)
    callbacks = [ModelChecks(), SanitySummary(print_summary=False)]
    t = fit(model, tmp_path, loader(*digits(256), batch_size=64), None, callbacks=callbacks, max_epochs=1,
            limit_train_batches=2, limit_val_batches=0, num_sanity_val_steps=0)
    return read_report(t.log_dir)


def _coverage(report):
    return [f for f in report["findings"] if f["check"] == "optimizer-coverage"]


def test_layers_in_a_python_list_fire(tmp_path):
    (finding,) = serious(_run(tmp_path, ListMLP(registered=False)), "optimizer-coverage")
    assert finding["severity"] == "warning" and finding["where"] == "hidden"
    assert finding["data"]["tensors"] == 4 and finding["data"]["containers"] == ["hidden"]
    assert finding["data"]["names"][0] == "hidden[0].weight" and "ModuleList" in finding["advice"]


@pytest.mark.parametrize("model", [lambda: ListMLP(registered=True), lambda: Distill(frozen=True), GradientPenalty],
                         ids=["ModuleList", "frozen teacher in a list", "gradient penalty"])
def test_registered_or_frozen_or_plain_tensors_stay_silent(tmp_path, model):
    report = _run(tmp_path, model())
    assert _coverage(report) == []
    assert {c["name"]: c["status"] for c in report["checks"]}["optimizer-coverage"] == "pass"


def test_a_teacher_in_eval_mode_that_requires_grad_is_information(tmp_path):
    (finding,) = _coverage(_run(tmp_path, Distill(frozen=False)))
    assert finding["severity"] == "info" and finding["data"]["all_eval"] and finding["where"] == "_teacher"


def test_unregistered_in_graph_on_tensors():
    model = ListMLP(registered=False)
    loss = model(torch.randn(4, 64)).sum()
    held = list(model.parameters())
    assert unregistered_in_graph(loss, model, held)["values"] == 64 * 32 + 32 + 32 * 32 + 32
    # parameters an optimizer holds are updated (the foreign-tensor rule judges them), not left out
    hidden = [p for layer in model.hidden for p in layer.parameters()]
    assert unregistered_in_graph(model(torch.randn(4, 64)).sum(), model, held + hidden) is None
    assert len(hidden_parameters(model)) == 4 and hidden_parameters(ListMLP(registered=True)) == {}
