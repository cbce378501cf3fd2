"""train-mode on stochastic depth left on in eval: timm's `drop_path(x, p, training=True)` called without
`self.training` drops whole residual branches at evaluation (a uniform draw floored into a Bernoulli mask) and is a
warning; the same block passing `self.training` is silent."""

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = True) -> torch.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    random_tensor = keep_prob + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
    random_tensor.floor_()
    return x.div(keep_prob) * random_tensor


class ResidualBlock(nn.Module):
    def __init__(self, dim: int, p: float, pass_training: bool) -> None:
        super().__init__()
        self.fc, self.p, self.pass_training = nn.Linear(dim, dim), p, pass_training

    def forward(self, x):
        branch = torch.relu(self.fc(x))
        return x + (drop_path(branch, self.p, self.training) if self.pass_training else drop_path(branch, self.p))


def _run(tmp_path, pass_training):
    L.seed_everything(0)
    net = nn.Sequential(nn.Linear(64, 32), ResidualBlock(32, 0.1, pass_training),
                        ResidualBlock(32, 0.2, pass_training), nn.Linear(32, 10))
    t = fit(Classifier(net=net), tmp_path, loader(*digits(256), batch_size=64),
            loader(*digits(64), batch_size=64, shuffle=False),
            callbacks=[PredictionDynamics(), SanitySummary(print_summary=False)], max_epochs=1)
    return read_report(t.log_dir)


@pytest.mark.parametrize("pass_training", [False, True], ids=["drop-path-in-eval", "healthy"])
def test_drop_path_in_eval_is_a_train_mode_warning(tmp_path, pass_training):
    found = serious(_run(tmp_path, pass_training), "train-mode")
    if pass_training:
        assert found == []
        return
    (finding,) = found
    assert finding["data"]["source"] == "masking" and finding["data"]["draws"] == ["rand rounded"]
    assert "drop-path" in finding["message"] and "self.training" in finding["advice"]
