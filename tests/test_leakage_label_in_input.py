"""target-leakage and split-overlap on a real Trainer for a leave-one-out recommender (Mult-DAE style: a multi-hot of
each user's items, trained to reconstruct it, validated on one held-out item per user). Validation inputs built from
the full history switch the held-out item on in every row and fire ``label-in-input``; the history without it stays
silent, and split-overlap does not take the shared (by design) history rows for a leak. A candidate-set model whose
label is one of its input's candidates in training and validation alike stays silent too."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary

USERS, ITEMS = 256, 60


def _log() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(full, history, held_out)``: each user's items from a low-rank taste model, one held out."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(USERS, 4, generator=g) @ torch.randn(4, ITEMS, generator=g)
    picks = torch.multinomial(torch.softmax(2 * scores, 1), 8, generator=g)
    full = torch.zeros(USERS, ITEMS).scatter_(1, picks, 1.0)
    held_out = picks[torch.arange(USERS), torch.randint(0, 8, (USERS,), generator=g)]
    history = full.clone()
    history[torch.arange(USERS), held_out] = 0.0
    return full, history, held_out


class MultDAE(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(0.3), nn.Linear(ITEMS, 32), nn.Tanh(), nn.Linear(32, ITEMS))

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.net(F.normalize(history, dim=1))

    def training_step(self, batch, batch_idx):
        (history,) = batch
        return -(F.log_softmax(self(history), 1) * history).sum(1).mean()

    def validation_step(self, batch, batch_idx):
        history, target = batch
        self.log("val_loss", F.cross_entropy(self(history), target))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("sanity_steps", [2, 0])
@pytest.mark.parametrize("val_input", ["full", "history"])
def test_validation_input_holding_the_held_out_item(tmp_path, val_input, sanity_steps):
    full, history, held_out = _log()
    L.seed_everything(0)
    t = trainer(tmp_path, [LeakageChecks(), SplitOverlap(), SanitySummary(print_summary=False)], logger=None,
                num_sanity_val_steps=sanity_steps)
    val = TensorDataset(full if val_input == "full" else history, held_out)
    t.fit(MultDAE(), DataLoader(TensorDataset(history), batch_size=32, shuffle=True), DataLoader(val, batch_size=64))
    report = read_report(t.log_dir)
    found = serious(report, "target-leakage")
    assert bool(found) is (val_input == "full"), [f["message"] for f in found]
    assert not serious(report, "split-overlap")
    overlap = next(c for c in report["checks"] if c["name"] == "split-overlap")
    if val_input == "full":
        assert found[0]["data"]["rows"] == 64 and found[0]["data"]["training_hits"] is None
        assert overlap["status"] == "pass"  # the full rows are not the training rows
    else:
        assert overlap["status"] == "skipped" and "leave-one-out" in overlap["detail"]


class CandidatePicker(L.LightningModule):
    """Picks the right one of each sample's candidates: the label is always among them, by design."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(2 * ITEMS, ITEMS)

    def forward(self, candidates: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([candidates, context], 1)).masked_fill(candidates == 0, -1e4)

    def training_step(self, batch, batch_idx):
        candidates, y, context = batch
        return F.cross_entropy(self(candidates, context), y)

    def validation_step(self, batch, batch_idx):
        candidates, y, context = batch
        self.log("val_loss", F.cross_entropy(self(candidates, context), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def test_candidate_sets_holding_their_label_in_both_splits_are_silent(tmp_path):
    full, history, held_out = _log()
    candidates = full.clone()  # the user's items, one of which (the held-out one) is the answer
    data = TensorDataset(candidates, held_out, history)
    L.seed_everything(0)
    t = trainer(tmp_path, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None)
    t.fit(CandidatePicker(), DataLoader(torch.utils.data.Subset(data, range(192)), batch_size=32, shuffle=True),
          DataLoader(torch.utils.data.Subset(data, range(192, 256)), batch_size=64))
    assert not serious(read_report(t.log_dir), "target-leakage")
