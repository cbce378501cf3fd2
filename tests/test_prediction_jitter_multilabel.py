"""prediction-jitter on multi-label logits trained with a loss the suite does not know (a hand-written focal loss).

0/1 tag targets against outputs outside [0, 1] are logits: read through a sigmoid, as binary predictions. Read as
regression, their magnitude, which keeps growing while the model grows confident, looked like predictions that
never settle (a blind zoo script's healthy tagger drew a warning this way). The same outputs trained with MSE stay
a regression (the loss inspector names the loss after the first step).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import digits, loader, read_report, serious, trainer
from torch import nn
from torch.nn import functional as F

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary


def focal(logits: torch.Tensor, tags: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    pt = torch.where(tags > 0, p, 1 - p)
    return (-(1 - pt) ** gamma * F.logsigmoid(torch.where(tags > 0, logits, -logits))).mean()


def _tags(y: torch.Tensor) -> torch.Tensor:
    """Four tags per digit: even, above 4, prime, has a closed loop."""
    sets = [(0, 2, 4, 6, 8), (5, 6, 7, 8, 9), (2, 3, 5, 7), (0, 6, 8, 9)]
    return torch.stack([torch.isin(y, torch.tensor(s)) for s in sets], 1).float()


class Tagger(L.LightningModule):
    def __init__(self, loss: str) -> None:
        super().__init__()
        self.loss = loss
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, tags = batch
        out = self(x)
        return focal(out, tags) if self.loss == "focal" else F.mse_loss(out, tags)

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("loss", ["focal", "mse"])
def test_multilabel_logits_of_an_unknown_loss_are_read_as_binary(tmp_path, loss):
    x, y = digits(768)
    tags = _tags(y)
    L.seed_everything(0)
    callbacks = [LossInspector(), PredictionDynamics(predictions_every_n_steps=4), SanitySummary(print_summary=False)]
    t = trainer(tmp_path, callbacks,
                logger=None, max_epochs=4)
    t.fit(Tagger(loss), loader(x[:640], tags[:640]), loader(x[640:], tags[640:], shuffle=False))
    report = read_report(t.log_dir)
    jitter = next(c for c in report["checks"] if c["name"] == "prediction-jitter")
    assert ("(binary)" if loss == "focal" else "(regression)") in jitter["detail"]
    assert not serious(report, "prediction-jitter")
