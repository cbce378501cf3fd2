"""loss-input for a hand-written loss: a pinball loss whose (B,) target, unsqueezed twice, broadcasts against (B, 3)
quantile predictions into (B, B, 3) fires (error, with the shapes); the same loss with a (B, 1) target, a ranking
loss that pairs outputs with outputs and targets with targets, and an InfoNCE head stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import diabetes, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary

_TAUS = torch.tensor([0.1, 0.5, 0.9])


class _Quantiles(L.LightningModule):
    def __init__(self, loss: str):
        super().__init__()
        self.loss = loss
        self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch  # y: (B,)
        pred = self(x)
        if self.loss == "ranking":  # pairwise on purpose: outputs against outputs, targets against targets
            s = pred[:, 1]
            sign = torch.sign(y[:, None] - y[None, :])
            return torch.relu(1.0 - sign * (s[:, None] - s[None, :])).mean()
        if self.loss == "infonce":
            z = nn.functional.normalize(pred, dim=-1)
            logits = z @ z.roll(1, 0).T / 0.1
            return nn.functional.cross_entropy(logits, torch.arange(len(z)))
        target = y.view(-1, 1, 1) if self.loss == "bug" else y.view(-1, 1)
        diff = target - pred
        return torch.maximum(_TAUS * diff, (_TAUS - 1) * diff).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("loss", ["bug", "healthy", "ranking", "infonce"])
def test_prediction_target_pairwise_broadcast(tmp_path, loss):
    x, y = diabetes()
    y = (y - y.mean()) / y.std()
    L.seed_everything(0)
    t = trainer(tmp_path, [LossInspector(), SanitySummary(print_summary=False)], logger=None, max_steps=3)
    t.fit(_Quantiles(loss), DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True))
    report = read_report(t.log_dir)
    found = serious(report, "loss-input")
    if loss == "bug":
        assert found and found[0]["severity"] == "error", report["checks"]
        data = found[0]["data"]
        assert data["result_shape"] == [32, 32, 3] and data["target_shape"] == [32, 1, 1]
        assert data["prediction_shape"] == [32, 3] and "view(-1, 1)" in found[0]["advice"]
    else:
        assert not found, found
