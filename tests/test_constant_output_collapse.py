"""constant-output during training without a bit-exact constant: a VAE on digits whose KL is summed over the batch
while its reconstruction is averaged collapses to one reconstruction for every input (the spread across the fixed
batch falls below 1/sqrt(B) of its start: warning); the per-sample ELBO keeps its outputs apart (silent)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import digits, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.collapse import collapsed_output


class _VAE(L.LightningModule):
    def __init__(self, kl_summed_over_batch: bool):
        super().__init__()
        self.kl_summed_over_batch = kl_summed_over_batch
        self.enc = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))
        self.dec = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64))

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.dec(z), mu, logvar

    def training_step(self, batch, batch_idx):
        x = batch[0]
        recon, mu, logvar = self(x)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)
        if self.kl_summed_over_batch:  # the bug: KL summed over batch and latents, reconstruction a mean per pixel
            return nn.functional.mse_loss(recon, x) + kl.sum()
        return nn.functional.mse_loss(recon, x, reduction="none").sum(-1).mean() + kl.mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


@pytest.mark.parametrize("bug", [True, False])
def test_vae_collapse_during_training(tmp_path, bug):
    x, _ = digits(1024)
    L.seed_everything(0)
    t = trainer(tmp_path, [PredictionDynamics(predictions_every_n_steps=8), SanitySummary(print_summary=False)],
                logger=None, max_epochs=4)
    t.fit(_VAE(bug), DataLoader(TensorDataset(x), batch_size=64, shuffle=True))
    report = read_report(t.log_dir)
    found = serious(report, "constant-output")
    if bug:
        assert found and found[0]["severity"] == "warning", report["checks"]
        spread = found[0]["data"]["spread"]
        assert found[0]["data"]["last_spread"] < spread["start_spread"] / 8
    else:
        assert not found, found


def test_judgement():
    assert collapsed_output(0.001, 0.08, None, 64)
    assert not collapsed_output(0.02, 0.08, None, 64)  # a quarter of the start: within sampling noise's reach
    assert not collapsed_output(0.001, 0.08, 0.005, 64)  # the targets hardly vary either: predicting them is fine
    assert not collapsed_output(0.001, 0.08, None, 64, same_class=False)  # classes still differ between samples
    assert not collapsed_output(0.001, 0.0, None, 64)  # constant from the start: the fit-start check's case
