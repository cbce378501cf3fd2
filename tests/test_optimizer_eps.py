"""update-ratio ``eps-dominates``: a small CNN on digits trained with RMSprop at the TensorFlow recipe's eps=1.0
(PyTorch adds eps after the square root: each step is lr * g / 1, plain SGD at a tiny lr) fires; the same model at
the ported eps=1e-3, and under Adam's default eps, stays silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import read_report, serious, trainer
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import optimizer_eps as OE


class _DigitsCNN(L.LightningModule):
    def __init__(self, optimizer, eps):
        super().__init__()
        self.optimizer, self.eps = optimizer, eps
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(8 * 64, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        if self.optimizer == "rmsprop":
            return torch.optim.RMSprop(self.parameters(), lr=2e-3, alpha=0.9, eps=self.eps, momentum=0.9)
        return torch.optim.Adam(self.parameters(), lr=1e-3, eps=self.eps)


@pytest.mark.parametrize("optimizer, eps, fires", [("rmsprop", 1.0, True), ("rmsprop", 1e-3, False),
                                                   ("adam", 1e-8, False)])
def test_eps_above_the_gradients_rms_fires(tmp_path, optimizer, eps, fires):
    d = load_digits()
    x = torch.tensor(d.images[:640] / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:640])
    L.seed_everything(0)
    t = trainer(tmp_path, [NormMonitor(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(_DigitsCNN(optimizer, eps), DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True))
    found = [f for f in serious(read_report(t.log_dir), "update-ratio") if f["data"].get("kind") == "eps-dominates"]
    if fires:
        assert found and found[0]["data"]["median_damping"] <= 0.1 and found[0]["data"]["early_step"], found
        assert "after the square root" in found[0]["advice"]
    else:
        assert not found, found


def test_second_moment_reads_each_family_and_skips_the_others():
    p = torch.nn.Parameter(torch.ones(4))
    for cls, key in ((torch.optim.Adam, "exp_avg_sq"), (torch.optim.RMSprop, "square_avg"),
                     (torch.optim.Adagrad, "sum")):
        opt = cls([p], lr=0.1)
        p.grad = torch.full((4,), 0.5)
        opt.step()
        v, correction = OE.second_moment(opt, opt.state[p])
        assert v is opt.state[p][key] and 0 < correction <= 1
        # the corrected mean square is the gradient's square after one step, whatever the family
        assert torch.allclose(v / correction, torch.full((4,), 0.25), rtol=1e-4) or cls is torch.optim.Adagrad
    sgd = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sgd.step()
    assert OE.second_moment(sgd, sgd.state[p]) is None
    # elements no gradient reached (state exactly 0) are not evidence
    assert OE.sample(torch.zeros(10)).numel() == 0
