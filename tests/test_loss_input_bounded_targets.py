"""loss-input: a regression loss comparing a sigmoid / tanh output with targets far outside its range (an
autoencoder with a sigmoid decoder on pixels left at 0..16) fires; pixels in [0, 1] with a sigmoid and
standardised targets with tanh stay silent."""

import lightning as L
import pytest
import torch
from helpers import diabetes, digits, fit, loader, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary


class AutoEncoder(L.LightningModule):
    def __init__(self, squash=nn.Sigmoid):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64), squash())

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return nn.functional.mse_loss(self.net(x), x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class TanhRegressor(AutoEncoder):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1), nn.Tanh())

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x).squeeze(-1), y)


def _report(model, train, tmp_path):
    L.seed_everything(0)
    t = fit(model, tmp_path, train=train, callbacks=[LossInspector(), SanitySummary(print_summary=False)],
            max_steps=2)
    return read_report(t.log_dir)


def _pixels(scale):
    return DataLoader(TensorDataset(digits()[0] * scale), batch_size=64)


def test_sigmoid_decoder_on_raw_pixels_fires(tmp_path):
    found = serious(_report(AutoEncoder(), _pixels(16.0), tmp_path), "loss-input")
    assert len(found) == 1, [f["message"] for f in found]
    data = found[0]["data"]
    assert data["activation"] == "sigmoid" and data["range"] == [0.0, 1.0] and data["unreachable_share"] > 1
    assert found[0]["where"] == "net.2" and "Scale the targets" in found[0]["advice"]


def _standardised_diabetes():
    x, y = diabetes()
    return loader(x, (y - y.mean()) / y.std())


@pytest.mark.parametrize("build, train", [(AutoEncoder, lambda: _pixels(1.0)),
                                          (TanhRegressor, _standardised_diabetes)], ids=["pixels-01", "tanh-z"])
def test_targets_within_reach_stay_silent(tmp_path, build, train):
    assert not serious(_report(build(), train(), tmp_path), "loss-input")
