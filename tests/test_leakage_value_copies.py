"""target-leakage for a regression target copied into another input: a forecaster whose known-future covariates
include the target series itself (the encoder's feature list reused for the decoder) fires; the same forecaster with
calendar and promotion covariates only stays silent."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.value_copies import value_copies

PAST, HORIZON = 21, 7


def _windows(leak: bool) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(200)
    promo = (torch.rand(16, 200, generator=g) < 0.2).float()
    sales = torch.sin(2 * torch.pi * t / 7) + 2 * promo + 0.3 * torch.randn(16, 200, generator=g)
    frame = torch.stack([sales, torch.sin(2 * torch.pi * t / 7).expand(16, -1), promo], -1)
    future_cols = [0, 1, 2] if leak else [1, 2]
    past, fut, y = [], [], []
    for s in range(PAST, 200 - HORIZON, 5):
        past.append(frame[:, s - PAST:s])
        fut.append(frame[:, s:s + HORIZON][..., future_cols])
        y.append(frame[:, s:s + HORIZON, 0])
    return DataLoader(TensorDataset(torch.cat(past), torch.cat(fut), torch.cat(y)), batch_size=64, shuffle=True)


class Forecaster(L.LightningModule):
    def __init__(self, future: int):
        super().__init__()
        self.enc = nn.GRU(3, 16, batch_first=True)
        self.dec = nn.Sequential(nn.Linear(16 + future, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, past, future):
        ctx = self.enc(past)[0][:, -1:].expand(-1, future.shape[1], -1)
        return self.dec(torch.cat([ctx, future], -1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        past, fut, y = batch
        return F.mse_loss(self(past, fut), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("leak", [True, False], ids=["sales-in-future-covariates", "calendar-and-promo-only"])
def test_future_covariates_holding_the_target_fire(tmp_path, leak):
    L.seed_everything(0)
    report = fit_report(tmp_path, Forecaster(3 if leak else 2), _windows(leak),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None,
                        max_epochs=1, limit_train_batches=2, num_sanity_val_steps=0)
    found = [f for f in serious(report) if f["check"] == "target-leakage"]
    if leak:
        assert len(found) == 1 and found[0]["where"] == "batch[1]" and found[0]["data"]["column"] == 0, found
        assert found[0]["data"]["how"] == "equal values" and "distinct values" in found[0]["message"]
    else:
        assert found == []


def test_few_distinct_values_are_no_evidence():
    y = torch.tensor([[0.5, 1.5], [1.5, 0.5], [0.5, 0.5]])
    assert value_copies(y, {"f": y.clone().unsqueeze(-1)}) == []
    y = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    assert [c.how for c in value_copies(y, {"f": y.clone()})] == ["equal values"]


LABEL_LEN = 14


def _decoder_windows(leak: bool) -> DataLoader:
    """Informer-style decoder inputs: the last ``LABEL_LEN`` known steps, then a placeholder for the horizon."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(400).float()
    series = torch.sin(2 * torch.pi * t / 24) + 0.3 * torch.randn(8, 400, generator=g)
    past, dec, y = [], [], []
    for s in range(PAST, 400 - HORIZON, 3):
        target = series[:, s:s + HORIZON]
        past.append(series[:, s - PAST:s, None])
        dec.append(torch.cat([series[:, s - LABEL_LEN:s], target if leak else torch.zeros_like(target)], 1)[..., None])
        y.append(target)
    return DataLoader(TensorDataset(torch.cat(past), torch.cat(dec), torch.cat(y)), batch_size=64, shuffle=True)


class DecoderForecaster(L.LightningModule):
    """An encoder GRU over the past; a decoder GRU over the decoder input, read at the horizon's positions."""

    def __init__(self):
        super().__init__()
        self.enc, self.dec = nn.GRU(1, 16, batch_first=True), nn.GRU(1, 16, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, past, dec):
        h = self.enc(past)[1]
        return self.head(self.dec(dec, h)[0][:, -HORIZON:]).squeeze(-1)

    def training_step(self, batch, batch_idx):
        past, dec, y = batch
        return F.mse_loss(self(past, dec), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("leak", [True, False], ids=["placeholder-holds-the-horizon", "zero-placeholder"])
def test_decoder_input_whose_placeholder_holds_the_target_fires(tmp_path, leak):
    L.seed_everything(0)
    report = fit_report(tmp_path, DecoderForecaster(), _decoder_windows(leak),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None,
                        max_epochs=1, limit_train_batches=2, num_sanity_val_steps=0)
    found = [f for f in serious(report) if f["check"] == "target-leakage"]
    if leak:
        assert len(found) == 1 and found[0]["where"] == "batch[1]", found
        assert found[0]["data"]["positions"] == [LABEL_LEN, LABEL_LEN + HORIZON - 1]
        assert f"positions {LABEL_LEN} to {LABEL_LEN + HORIZON - 1}" in found[0]["message"]
    else:
        assert found == []
