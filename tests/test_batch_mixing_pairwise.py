"""batch-mixing behind a pairwise output, on real Trainers: a dual encoder (dict batches with keys of their own,
`query_input_ids` / `passage_input_ids`) whose forward returns the (B, B) similarity matrix, with embeddings
normalised over the batch (`F.normalize(z, dim=0)`) vs over their features; and healthy pairwise models that must
stay silent: a siamese network with BatchNorm in its encoder (trained in train mode) and a CLIP-style two-tower model."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary


def _pairs(n: int = 64) -> DataLoader:
    """A passage shares two of its query's three words among filler."""
    g = torch.Generator().manual_seed(0)
    words = torch.stack([torch.randperm(40, generator=g)[:3] + 1 for _ in range(n)])
    q = torch.cat([words, torch.randint(41, 60, (n, 3), generator=g)], 1)
    p = torch.cat([words[:, :2], torch.randint(41, 60, (n, 6), generator=g)], 1)
    rows = [{"query_input_ids": q[i], "query_attention_mask": torch.ones(6, dtype=torch.long),
             "passage_input_ids": p[i], "passage_attention_mask": torch.ones(8, dtype=torch.long)} for i in range(n)]
    return DataLoader(rows, batch_size=16)


class Encoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.embed, self.proj = nn.Embedding(60, 16), nn.Linear(16, 8)  # 8 features: not (B, B)-shaped

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[..., None].float()
        pooled = (self.embed(ids) * m).sum(1) / m.sum(1)
        return F.normalize(self.proj(pooled), dim=self.dim)


class DualEncoder(L.LightningModule):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.encoder = Encoder(dim)

    def forward(self, batch: dict) -> torch.Tensor:
        q = self.encoder(batch["query_input_ids"], batch["query_attention_mask"])
        p = self.encoder(batch["passage_input_ids"], batch["passage_attention_mask"])
        return 20 * q @ p.T

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits = self(batch)
        return F.cross_entropy(logits, torch.arange(len(logits)))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _fit(tmp_path: Any, model: L.LightningModule, data: DataLoader) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, model, data, [ModelChecks(), SanitySummary(print_summary=False)], logger=None,
                      max_steps=2)


@pytest.mark.parametrize("dim", [0, -1])
def test_embeddings_normalised_over_the_batch_fire_over_features_silent(tmp_path, dim):
    report = _fit(tmp_path, DualEncoder(dim), _pairs())
    found = serious(report, "batch-mixing")
    status = {c["name"]: c for c in report["checks"]}["batch-mixing"]
    if dim == 0:
        assert found and found[0]["where"] == "encoder" and found[0]["data"]["pairwise_output"], report["findings"]
        assert found[0]["data"]["leak_fraction"] > 0.1 and "dim=-1" in found[0]["advice"]
    else:
        assert not serious(report), report["findings"]
        assert status["status"] == "pass" and "pairwise output" in status["detail"], status


class Siamese(L.LightningModule):
    """Two views of digits-like vectors, one encoder with BatchNorm (train mode mixes by design; eval mode does not)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(a), dim=-1) @ F.normalize(self.encoder(b), dim=-1).T

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits = self(*batch) / 0.1
        return F.cross_entropy(logits, torch.arange(len(logits)))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


class TwoTower(L.LightningModule):
    """CLIP-style: an "image" MLP and a "text" EmbeddingBag, a learnable logit scale, symmetric InfoNCE."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Linear(12, 16), nn.GELU(), nn.Linear(16, 8))
        self.text = nn.EmbeddingBag(30, 8)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, a: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.scale.exp() * F.normalize(self.image(a), dim=-1) @ F.normalize(self.text(ids), dim=-1).T

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        a, ids = batch
        logits, target = self(a, ids), torch.arange(len(a))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("kind", ["siamese-batchnorm", "two-tower"])
def test_healthy_pairwise_models_are_silent(tmp_path, kind):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 12, generator=g)
    if kind == "siamese-batchnorm":
        model, other = Siamese(), a + 0.1 * torch.randn(64, 12, generator=g)
    else:
        model, other = TwoTower(), (a[:, :4].abs() * 7).long().clamp(max=29)
    report = _fit(tmp_path, model, DataLoader(TensorDataset(a, other), batch_size=16))
    assert not serious(report), report["findings"]
    status = {c["name"]: c for c in report["checks"]}["batch-mixing"]
    assert status["status"] == "pass" and "pairwise output" in status["detail"], status
