"""loss-input on the losses whose target is a sign (+1 / -1) in real Trainer runs: a siamese encoder trained with
`CosineEmbeddingLoss` on 0/1 duplicate labels fires, the same with `2 * label - 1` stays silent; a ranker whose
`margin_ranking_loss` target is `torch.sign(r1 - r2)` (ties at 0, -1 present) stays silent."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.checks.sign_targets import zero_one_targets


def _pairs():
    """Pairs of noisy copies of 8 prototypes: label 1 when both come from the same prototype."""
    gen = torch.Generator().manual_seed(0)
    protos = torch.randn(8, 16, generator=gen)
    a, b = torch.randint(0, 8, (256,), generator=gen), torch.randint(0, 8, (256,), generator=gen)
    b[::2] = a[::2]
    x1 = protos[a] + 0.3 * torch.randn(256, 16, generator=gen)
    x2 = protos[b] + 0.3 * torch.randn(256, 16, generator=gen)
    return DataLoader(TensorDataset(x1, x2, (a == b).long()), batch_size=32, shuffle=True)


class Siamese(L.LightningModule):
    def __init__(self, signed: bool):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
        self.loss_fn, self.signed = nn.CosineEmbeddingLoss(margin=0.2), signed

    def training_step(self, batch, batch_idx):
        x1, x2, label = batch
        return self.loss_fn(self.enc(x1), self.enc(x2), 2 * label - 1 if self.signed else label)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class Ranker(L.LightningModule):
    """Scores items; pairs are ranked by the sign of their relevance difference (ties give 0, on purpose)."""

    def __init__(self):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x1, x2, _ = batch
        r1, r2 = x1[:, 0].round(), x2[:, 0].round()  # graded relevance with ties
        return F.margin_ranking_loss(self.score(x1).squeeze(-1), self.score(x2).squeeze(-1), torch.sign(r1 - r2),
                                     margin=0.5)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _run(tmp_path, model):
    L.seed_everything(0)
    return fit_report(tmp_path, model, _pairs(), my_callbacks(), max_epochs=1, limit_train_batches=2,
                      num_sanity_val_steps=0)


def test_cosine_embedding_loss_fed_zero_one_labels_fires(tmp_path):
    (finding,) = serious(_run(tmp_path, Siamese(signed=False)), "loss-input")
    assert finding["severity"] == "error" and finding["data"]["loss"] == "cosine_embedding_loss"
    assert finding["data"]["zeros"] > 0 and "2 * label - 1" in finding["advice"]


@pytest.mark.parametrize("model", [lambda: Siamese(signed=True), Ranker], ids=["cosine +-1", "ranking sign ties"])
def test_sign_targets_stay_silent(tmp_path, model):
    report = _run(tmp_path, model())
    checks = {c["name"]: c for c in report["checks"]}
    assert serious(report) == []
    assert checks["loss-input"]["status"] == "pass" and "{-1, 1}" in checks["loss-input"]["detail"]


def test_zero_one_targets_on_tensors():
    assert zero_one_targets(torch.tensor([True, False, True]))["zero_share"] == pytest.approx(1 / 3)
    assert zero_one_targets(torch.tensor([0.0, 1.0, -1.0])) is None  # a sign with ties
    assert zero_one_targets(torch.zeros(4)) is None and zero_one_targets(torch.ones(4)) is None
    assert zero_one_targets(torch.tensor([0.0, 0.5, 1.0])) is None  # soft targets: not a 0/1 label
