"""val-divergence with a validation metric named as the root of the training loss (`val_rmse` beside an MSE): judged
squared. A matrix factorisation whose validation ids are compacted apart from the training ids (they name other
users and items) fires val-divergence, and its (user, item) pairs that meet training pairs at the rate random items
would are no split-overlap; the same model with one id map stays silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity
from lightning_sanity.checks.metric_units import loss_units, named_measure

USERS, ITEMS, PER_USER = 300, 120, 40


def _ratings():
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(USERS, 3, generator=g), torch.randn(ITEMS, 3, generator=g)
    bu, bi = 0.5 * torch.randn(USERS, generator=g), 0.7 * torch.randn(ITEMS, generator=g)
    items = torch.stack([torch.randperm(ITEMS, generator=g)[:PER_USER] for _ in range(USERS)])
    users = torch.arange(USERS)[:, None].expand_as(items)
    r = bu[users] + bi[items] + 0.6 * (p[users] * q[items]).sum(-1) + 0.4 * torch.randn(items.shape, generator=g)
    order = torch.randperm(users.numel(), generator=g)
    return users.reshape(-1)[order], items.reshape(-1)[order], r.reshape(-1)[order]


class MF(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.P, self.Q = nn.Embedding(USERS, 16), nn.Embedding(ITEMS, 16)
        self.bu, self.bi = nn.Embedding(USERS, 1), nn.Embedding(ITEMS, 1)
        for e in (self.P, self.Q):
            nn.init.normal_(e.weight, std=0.1)
        for e in (self.bu, self.bi):
            nn.init.zeros_(e.weight)

    def forward(self, u, i):
        return self.bu(u)[:, 0] + self.bi(i)[:, 0] + (self.P(u) * self.Q(i)).sum(1)

    def training_step(self, batch, batch_idx):
        u, i, r = batch
        return F.mse_loss(self(u, i), r)

    def validation_step(self, batch, batch_idx):
        u, i, r = batch
        self.log("val_rmse", F.mse_loss(self(u, i), r).sqrt())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-2)


@pytest.mark.parametrize("remapped", [True, False], ids=["val-ids-compacted-apart", "one-id-map"])
def test_val_rmse_is_judged_in_the_mse_units(tmp_path, remapped):
    users, items, r = _ratings()
    n_val = 1200
    vu, vi = users[:n_val], items[:n_val]
    if remapped:  # validation's compact index k names another user and another item than training's index k
        g = torch.Generator().manual_seed(1)
        vu, vi = torch.randperm(USERS, generator=g)[vu], torch.randperm(ITEMS, generator=g)[vi]
    train = DataLoader(TensorDataset(users[n_val:], items[n_val:], r[n_val:]), batch_size=512, shuffle=True)
    val = DataLoader(TensorDataset(vu, vi, r[:n_val]), batch_size=600)
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=12)
    t.fit(MF(), train, val)
    report = read_report(t.log_dir)
    check = {c["name"]: c for c in report["checks"]}["val-divergence"]
    assert "`val_rmse` squared" in check["detail"]
    assert not serious(report, "split-overlap")  # pairs that meet training by chance are no copies
    if remapped:
        found = serious(report, "val-divergence")
        assert found and found[0]["data"]["pattern"] in ("never-beats-baseline", "worse-than-baseline",
                                                         "ends-above-baseline")
        assert "`val_rmse` squared" in found[0]["message"]
    else:
        assert not serious(report)


def test_metric_names_state_their_units():
    square, note = loss_units("val_rmse", "mse")
    assert square(1.3) == pytest.approx(1.69) and "squared" in note
    assert loss_units("val/mae", "mse")[0] is None and loss_units("val_rmse", "l1")[0] is None
    same, note = loss_units("val_mse", "mse")
    assert same(1.3) == 1.3 and note is None
    assert loss_units("val_loss", "huber")[0](2.0) == 2.0 and loss_units("val_rmse", None)[1] is None
    assert [named_measure(k) for k in ("valid/rmse_epoch", "val_eps_mse", "val_mae", "val_loss", "val_msle")] == [
        "rmse", "mse", "mae", None, None]


@pytest.mark.parametrize("centred", [False, True], ids=["val-ratings-raw", "val-ratings-centred"])
def test_target_moments_read_the_part_the_loss_compares_with(tmp_path, centred):
    # Ratings trained as residuals from the training mean: `(users, items, rating)` has its target third, and the
    # items second are integer ids, which carry no target moments.
    users, items, r = _ratings()
    raw, n_val = (r + 3.6).round().clamp(1, 5), 1200
    mean = float(raw[n_val:].mean())
    train = DataLoader(TensorDataset(users[n_val:], items[n_val:], raw[n_val:] - mean), batch_size=512, shuffle=True)
    val = DataLoader(TensorDataset(users[:n_val], items[:n_val], raw[:n_val] - (mean if centred else 0.0)),
                     batch_size=600)
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=6)
    t.fit(MF(), train, val)
    report = read_report(t.log_dir)
    found = serious(report, "val-divergence")
    if centred:
        assert not serious(report), serious(report)
    else:
        assert any(f["data"]["pattern"] == "target-shift" for f in found), found
