"""TrainModeMonitor on real Trainer runs: modules left in eval mode, BatchNorm on a batch of one, and the healthy
patterns (frozen backbone in eval mode, BatchNorm/Dropout models) that must stay quiet."""

import pytest
import torch
from helpers import Classifier, digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.train_mode import TrainModeMonitor


def _run(model, tmp_path, train=None, **kwargs) -> dict:
    train = train if train is not None else loader(*digits(256), batch_size=64)
    settings = dict(max_epochs=2, limit_train_batches=3, limit_val_batches=1, num_sanity_val_steps=0)
    settings.update(kwargs)
    t = fit(model, tmp_path, train, loader(*digits(64), batch_size=32, shuffle=False),
            callbacks=[TrainModeMonitor(), SanitySummary(print_summary=False)], **settings)
    return read_report(t.log_dir)


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))


class ImageNet(Classifier):
    """Digits as 1x8x8 images through a conv + BatchNorm2d backbone and a linear head."""

    def __init__(self, freeze_backbone: bool = False, eval_backbone: bool = False) -> None:
        backbone = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.1),
                                 nn.Flatten(), nn.Linear(8 * 64, 32), nn.Dropout(0.2))
        super().__init__(net=backbone)
        self.head = nn.Linear(32, 10)
        self.eval_backbone = eval_backbone
        if freeze_backbone:
            self.net.requires_grad_(False)
            # A frozen part is a pretrained one: its BatchNorm carries learnt statistics, as a checkpoint holds them
            # (a frozen BatchNorm still at its initial 0/1 is a checkpoint that did not load: test_frozen_statistics).
            self.net[1].running_mean.fill_(0.1)
            self.net[1].running_var.fill_(0.8)

    def forward(self, x):
        return self.head(self.net(x.view(-1, 1, 8, 8)))

    def on_train_epoch_start(self):
        if self.eval_backbone:
            self.net.eval()

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=1e-2)


def test_eval_call_in_train_epoch_start_is_a_warning(tmp_path):
    report = _run(ImageNet(eval_backbone=True), tmp_path)
    (finding,) = serious(report, "train-mode")
    assert finding["severity"] == "warning" and finding["where"] == "net.1"
    assert finding["data"]["modules"] == ["net.1", "net.3", "net.6"]
    assert finding["data"]["count"] == 6  # every training batch of both epochs
    assert "BatchNorm/Dropout" in finding["message"]


def test_frozen_backbone_in_eval_mode_is_only_info(tmp_path):
    report = _run(ImageNet(freeze_backbone=True, eval_backbone=True), tmp_path)
    assert serious(report, "train-mode") == []
    (info,) = [f for f in report["findings"] if f["check"] == "train-mode"]
    assert info["severity"] == "info" and info["data"]["modules"] == ["net.1", "net.3", "net.6"]


def test_frozen_backbone_via_train_override_is_only_info(tmp_path):
    class KeepsBackboneEval(ImageNet):
        def train(self, mode: bool = True):
            super().train(mode)
            self.net.eval()  # the usual way to keep a frozen pretrained part in eval mode
            return self

    model = KeepsBackboneEval(freeze_backbone=True).train()
    report = _run(model, tmp_path)
    assert serious(report, "train-mode") == []
    assert [f["severity"] for f in report["findings"] if f["check"] == "train-mode"] == ["info"]


@pytest.mark.parametrize("make", [lambda: Classifier(net=_mlp()), ImageNet], ids=["mlp-bn-dropout", "cnn-bn"])
def test_healthy_models_are_silent(tmp_path, make):
    report = _run(make(), tmp_path)
    assert [f for f in report["findings"] if f["check"] == "train-mode"] == []
    assert next(c for c in report["checks"] if c["name"] == "train-mode")["status"] == "pass"


def test_dropout_with_p_zero_in_eval_mode_is_irrelevant(tmp_path):
    class NoDrop(Classifier):
        def __init__(self):
            super().__init__(net=nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.0), nn.Linear(32, 10)))

        def on_train_epoch_start(self):
            self.net[2].eval()

    report = _run(NoDrop(), tmp_path)
    assert [f for f in report["findings"] if f["check"] == "train-mode"] == []


def test_batchnorm2d_on_a_batch_of_one_is_a_warning(tmp_path):
    x, y = digits(129)  # 64 + 64 + 1: the last batch holds one image
    report = _run(ImageNet(), tmp_path, train=loader(x, y, batch_size=64, shuffle=False), max_epochs=1,
                  limit_train_batches=None)
    (finding,) = serious(report, "train-mode")
    assert finding["where"] == "net.1" and finding["batch_idx"] == 2 and finding["data"]["batch_size"] == 1


def test_batchnorm1d_on_a_batch_of_one_is_reported_before_pytorch_raises(tmp_path):
    x, y = digits(65)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        _run(Classifier(net=_mlp()), tmp_path, train=loader(x, y, batch_size=64, shuffle=False), max_epochs=1,
             limit_train_batches=None)
    report = read_report(next(tmp_path.glob("logs/version_*")))
    (finding,) = serious(report, "train-mode")
    assert finding["where"] == "net.1" and finding["batch_idx"] == 1


def test_invalid_get_input_is_rejected():
    with pytest.raises(ValueError, match="get_input"):
        TrainModeMonitor(get_input=1)
