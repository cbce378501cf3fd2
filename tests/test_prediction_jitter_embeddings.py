"""prediction-jitter reads a (B, K) output as class scores only with evidence. A metric-learning embedding, L2
normalised and trained with a hand-written triplet loss, has integer labels (identities) that happen to index its K
coordinates: its argmax "classes" are noise and are not judged. The same network with a linear head and
cross-entropy is still read as a classifier."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import digits, loader, read_report, trainer
from torch import nn
from torch.nn import functional as F

from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary


def triplet(emb: torch.Tensor, y: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    d = torch.cdist(emb, emb)
    same = y[:, None] == y[None, :]
    hardest_pos = (d * same).max(1).values
    hardest_neg = (d + 4.0 * same).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


class Embedder(L.LightningModule):
    def __init__(self, metric: bool) -> None:
        super().__init__()
        self.metric = metric
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return F.normalize(out, dim=1) if self.metric else out

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        return triplet(out, y) if self.metric else F.cross_entropy(out, y)

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


@pytest.mark.parametrize("metric", [True, False])
def test_a_normalised_embedding_is_not_read_as_class_scores(tmp_path, metric):
    x, y = digits(768)
    L.seed_everything(0)
    t = trainer(tmp_path, [PredictionDynamics(predictions_every_n_steps=4), SanitySummary(print_summary=False)],
                logger=None, max_epochs=3)
    t.fit(Embedder(metric), loader(x[:640], y[:640]), loader(x[640:], y[640:], shuffle=False))
    report = read_report(t.log_dir)
    jitter = next(c for c in report["checks"] if c["name"] == "prediction-jitter")
    assert ("(classification)" in jitter["detail"]) is not metric
    if metric:
        assert jitter["status"] == "skipped"
