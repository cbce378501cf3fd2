"""val-divergence judges every validation dataloader on its own, on real Trainers: a second ("partner site") loader
whose feature columns come in alphabetical order (each column scaled with another's training statistics) fires,
named by its loader; two loaders from the same distribution, and a second one that is harder (noisier inputs) but
learns, stay silent."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence


def _sites(partner: str) -> tuple[DataLoader, list[DataLoader]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))
    train, home, other = order[:320], order[320:400], order[400:]
    mean, std = data.data[train].mean(0), data.data[train].std(0)
    columns = np.argsort(data.feature_names) if partner == "sorted" else np.arange(data.data.shape[1])
    x_other = (data.data[other][:, columns] - mean) / std
    if partner == "harder":  # another scanner: noisier measurements, the same features
        x_other = x_other + np.random.default_rng(1).normal(0, 0.7, x_other.shape)

    def dataset(x, rows):
        return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(data.target[rows]))

    gen = torch.Generator().manual_seed(0)
    train_loader = DataLoader(dataset((data.data[train] - mean) / std, train), batch_size=32, shuffle=True,
                              generator=gen)
    return train_loader, [DataLoader(dataset((data.data[home] - mean) / std, home), batch_size=64),
                          DataLoader(dataset(x_other, other), batch_size=64)]


class TumourMLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        self.log("val_loss", F.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("partner, fires", [("sorted", True), ("same", False), ("harder", False)])
def test_each_validation_dataloader_is_judged_on_its_own(tmp_path, one_thread, partner, fires):
    L.seed_everything(0)
    train, val = _sites(partner)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=8)
    t.fit(TumourMLP(), train, val)
    report = read_report(t.log_dir)
    found = serious(report, "val-divergence")
    assert bool(found) == fires, found
    if fires:
        assert {f["where"] for f in found} == {"validation dataloader 1 (`val_loss/dataloader_idx_1`)"}, found
        assert found[0]["message"].startswith("Validation dataloader 1 (`val_loss/dataloader_idx_1`): ")
    detail = next(c["detail"] for c in report["checks"] if c["name"] == "val-divergence")
    assert "`val_loss/dataloader_idx_0`" in detail and "`val_loss/dataloader_idx_1`" in detail, detail


def test_loaders_past_the_cap_are_named_not_judged(tmp_path, one_thread):
    L.seed_everything(0)
    train, val = _sites("same")
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(TumourMLP(), train, val + val[1:] * 4)  # six loaders
    report = read_report(t.log_dir)
    assert not serious(report, "val-divergence")
    detail = next(c["detail"] for c in report["checks"] if c["name"] == "val-divergence")
    assert "`val_loss/dataloader_idx_3`" in detail and "`val_loss/dataloader_idx_4`" not in detail, detail
    assert "validation dataloaders 4 to 5 not judged (the first 4 are)" in detail, detail


def test_every_loader_has_its_loss_before_training(tmp_path, one_thread):
    """Lightning publishes no sanity-check figure with several loaders; each loader's is read at its last sanity
    batch, so the input-independent baseline applies to each (the full suite computes the baseline)."""
    import lightning_sanity

    L.seed_everything(0)
    train, val = _sites("same")
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=3)
    t.fit(TumourMLP(), train, val)
    report = read_report(t.log_dir)
    assert not serious(report, "val-divergence")
    detail = next(c["detail"] for c in report["checks"] if c["name"] == "val-divergence")
    assert detail.count("; baseline ") == 2, detail
    assert {"val_loss/dataloader_idx_0", "val_loss/dataloader_idx_1"} <= set(t.callback_metrics)
