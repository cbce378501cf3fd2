"""val-divergence without a baseline (a custom contrastive loss): validation pairs labelled with the opposite
convention never clearly beat the validation loss before training and end above it while training falls far
(fires); the same model with one convention improves first (silent). And the baseline rule's second branch: a
validation that never clearly beats the baseline and ends above it."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import digits, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence
from lightning_sanity.checks.val_first_look import judge_never_improves
from lightning_sanity.checks.validation import judge_val_divergence


def _pairs(x, y, n, seed):
    g = torch.Generator().manual_seed(seed)
    i, j = torch.randint(0, len(y), (n,), generator=g), torch.randint(0, len(y), (n,), generator=g)
    for k in torch.nonzero(torch.rand(n, generator=g) < 0.5).flatten().tolist():
        same = torch.nonzero(y == y[i[k]]).flatten()
        j[k] = same[torch.randint(0, len(same), (1,), generator=g)]
    return x[i], x[j], (y[i] == y[j]).float()


def _contrastive(d, same):
    return (same * d.pow(2) + (1 - same) * (1.0 - d).clamp(min=0).pow(2)).mean()


class _Siamese(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, 16))

    def forward(self, a, b):
        return (nn.functional.normalize(self.encoder(a), dim=-1) - nn.functional.normalize(self.encoder(b), dim=-1)).norm(dim=-1)

    def training_step(self, batch, batch_idx):
        return _contrastive(self(*batch[:2]), batch[2])

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", _contrastive(self(*batch[:2]), batch[2]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("flipped", [True, False])
def test_validation_pairs_with_the_opposite_label_convention_fire(tmp_path, flipped):
    x, y = digits()
    tr, va = torch.arange(0, 1300), torch.arange(1300, len(y))
    a, b, same = _pairs(x[tr], y[tr], 800, 0)
    va_a, va_b, va_same = _pairs(x[va], y[va], 300, 1)
    if flipped:
        va_same = 1.0 - va_same  # another script's convention: 1 = different
    L.seed_everything(0)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=5)
    t.fit(_Siamese(), DataLoader(TensorDataset(a, b, same), batch_size=64, shuffle=True),
          DataLoader(TensorDataset(va_a, va_b, va_same), batch_size=300))
    found = serious(read_report(t.log_dir), "val-divergence")
    if flipped:
        assert found and found[0]["data"]["pattern"] == "never-improves", found
        assert found[0]["severity"] == "warning" and "label convention" in found[0]["advice"]
    else:
        assert not found


def test_judgements():
    # healthy overfitting: clearly better than before training first, then up; silent
    assert judge_never_improves(1.0, [0.4, 0.6, 1.3], [0.5, 0.2, 0.05], [0.1, 0.02, 0.01]) is None
    # training within its noise: not "falls far"
    assert judge_never_improves(1.0, [0.9, 1.1, 1.3], [0.5, 0.49, 0.48], [0.1, 0.1, 0.1]) is None
    assert judge_never_improves(None, [0.9, 1.1, 1.3], [0.5, 0.2, 0.05], [0.1, 0.02, 0.01]) is None
    # the baseline rule: never clearly below the baseline, ends 20 % above it
    v = judge_val_divergence(train=[1.0, 0.6, 0.4], val=[1.1, 1.5, 2.1], baseline=1.1)
    assert v is not None and v.kind == "worse-than-baseline" and "never clearly beat" in v.message
    # healthy overfitting past the baseline after beating it: only info
    v = judge_val_divergence(train=[1.0, 0.4, 0.2, 0.1], val=[0.6, 0.7, 0.9, 1.4], baseline=1.1)
    assert v is not None and v.kind == "overfitting" and v.severity == "info"
