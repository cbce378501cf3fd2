"""weight-growth: an output layer over a product of small embeddings grows 10x+ and slows (settling, healthy);
the same model on an unbounded loss grows as fast late as early (diverging)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _pairs(n_users=200, n_items=100, n=8000):
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(n_users, 4, generator=g), torch.randn(n_items, 4, generator=g)
    users, items = torch.randint(0, n_users, (n,), generator=g), torch.randint(0, n_items, (n,), generator=g)
    labels = ((u[users] * v[items]).sum(1) > 0).float()
    return DataLoader(TensorDataset(users, items, labels), batch_size=64, shuffle=True)


class _GMF(L.LightningModule):
    """Generalised matrix factorisation: small embeddings (std 0.05), their product read by a Linear output."""

    def __init__(self, unbounded):
        super().__init__()
        self.unbounded = unbounded
        self.user, self.item = nn.Embedding(200, 16), nn.Embedding(100, 16)
        for e in (self.user, self.item):
            nn.init.normal_(e.weight, std=0.05)
        self.out = nn.Linear(16, 1)

    def training_step(self, batch, batch_idx):
        users, items, labels = batch
        logits = self.out(self.user(users) * self.item(items)).squeeze(-1)
        if self.unbounded:  # raw scores pushed apart: lowered without bound by scaling the weights up
            return (logits * (1 - 2 * labels)).mean()
        return F.binary_cross_entropy_with_logits(logits, labels)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("unbounded", [False, True])
def test_output_layer_over_small_product_settles(tmp_path, unbounded):
    L.seed_everything(0)
    t = fit(_GMF(unbounded), tmp_path, _pairs(), max_epochs=5)
    found = serious(read_report(t.log_dir), "weight-growth")
    if unbounded:
        assert found and "out" in found[0]["data"]["layers"], found
    else:
        assert not found, found
