"""train-mode on a copy kept beside the model: a timm-style ``ModelEmaV2`` (a deepcopy in eval mode, parameters left
``requires_grad=True``, outside the optimizer, updated under ``no_grad``) is not being trained, so its eval-mode
BatchNorm is not a bug; a module outside the optimizer that backward does reach, in eval mode, still is."""

from copy import deepcopy

import torch
from helpers import Classifier, digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.train_mode import TrainModeMonitor


class ModelEma(nn.Module):
    """timm's ``ModelEmaV2``: a state-dict EMA (BatchNorm buffers included) of a deepcopy kept in eval mode."""

    def __init__(self, model: nn.Module, decay: float = 0.9) -> None:
        super().__init__()
        self.module = deepcopy(model).eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            e.copy_(self.decay * e + (1 - self.decay) * m if e.is_floating_point() else m)

    def forward(self, x):
        return self.module(x)


class EmaClassifier(Classifier):
    def __init__(self, stray_eval: bool = False, ema_in_loss: bool = False) -> None:
        super().__init__(net=nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)))
        self.ema = ModelEma(self.net)
        self.stray_eval, self.ema_in_loss = stray_eval, ema_in_loss

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.ema_in_loss:  # a bug: the "EMA" joins the loss graph, so it is being trained in eval mode
            loss = loss + 0.1 * nn.functional.cross_entropy(self.ema(batch[0]), batch[1])
        return loss

    def on_train_epoch_start(self):
        if self.stray_eval:
            self.net.eval()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update(self.net)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", nn.functional.cross_entropy(self.ema(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=1e-2)


def _run(model, tmp_path) -> dict:
    t = fit(model, tmp_path, loader(*digits(256), batch_size=64), loader(*digits(64), batch_size=32, shuffle=False),
            callbacks=[TrainModeMonitor(), ModelChecks(), SanitySummary(print_summary=False)],
            max_epochs=2, limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0)
    return read_report(t.log_dir)


def test_ema_copy_in_eval_mode_is_only_info(tmp_path):
    report = _run(EmaClassifier(), tmp_path)
    assert serious(report, "train-mode") == []
    (info,) = [f for f in report["findings"] if f["check"] == "train-mode"]
    assert info["severity"] == "info" and info["data"]["modules"] == ["ema.module.1"]
    assert next(c for c in report["checks"] if c["name"] == "train-mode")["status"] == "pass"


def test_stray_eval_beside_an_ema_still_warns_for_the_trained_model(tmp_path):
    report = _run(EmaClassifier(stray_eval=True), tmp_path)
    (warning,) = serious(report, "train-mode")
    assert warning["data"]["modules"] == ["net.1"] and warning["data"]["count"] == 6


def test_eval_copy_that_backward_reaches_is_a_warning(tmp_path):
    report = _run(EmaClassifier(ema_in_loss=True), tmp_path)
    (warning,) = serious(report, "train-mode")
    assert warning["data"]["modules"] == ["ema.module.1"] and warning["data"]["count"] == 6
    assert "backward gives them gradients" in warning["message"]
