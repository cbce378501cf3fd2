"""input-scale kind ``mixed-scale``: the first weighted layer's input, where one feature is far above the others
(a raw timestep drawn in the step, a unix timestamp concatenated to embeddings); silent when the feature is scaled,
or when a normalisation layer comes first."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.data_checks import DataChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.mixed_scale import mixed_scale

STEPS = 200


class PointDenoiser(L.LightningModule):
    """A DDPM-style noise predictor on 2-D points; the timestep is drawn in the step and concatenated."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.norm = nn.LayerNorm(3) if how == "layernorm" else nn.Identity()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2))
        self.register_buffer("alpha_bar", torch.cumprod(1 - torch.linspace(1e-4, 0.02, STEPS), 0))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time = t[:, None].float() / (STEPS if self.how == "scaled" else 1)
        return self.net(self.norm(torch.cat([x_t, time], 1)))

    def training_step(self, batch, batch_idx):
        (x0,) = batch
        g = torch.Generator().manual_seed(batch_idx)  # the suite must not see the global RNG move
        t = torch.randint(0, STEPS, (x0.shape[0],), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        ab = self.alpha_bar[t][:, None]
        return F.mse_loss(self(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t), eps)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _report(tmp_path, how: str) -> dict:
    g = torch.Generator().manual_seed(0)
    angles = torch.rand(512, generator=g) * 6.28
    points = torch.stack([angles.cos(), angles.sin()], 1) + 0.1 * torch.randn(512, 2, generator=g)
    t = trainer(tmp_path, [DataChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=3)
    t.fit(PointDenoiser(how), DataLoader(TensorDataset(points), batch_size=64, shuffle=True))
    return read_report(t.log_dir)


def test_a_raw_timestep_concatenated_to_the_points_warns(tmp_path, one_thread):
    (finding,) = serious(_report(tmp_path, "raw"), "input-scale")
    assert finding["where"] == "net.0"
    assert finding["data"]["max_feature"] == 2 and finding["data"]["ratio"] > 20


@pytest.mark.parametrize("how", ["scaled", "layernorm"])
def test_a_scaled_timestep_or_a_normalisation_first_stays_silent(tmp_path, one_thread, how):
    assert not serious(_report(tmp_path, how), "input-scale")


def test_the_judgement_needs_a_minority_of_large_features_over_a_typical_one_that_carries_signal():
    assert mixed_scale(torch.tensor([1.0, 0.9, 1.1, 115.0]))["max_feature"] == 3
    assert mixed_scale(torch.tensor([40.0, 45.0, 50.0, 1.0])) is None  # mostly large: an overall scale
    assert mixed_scale(torch.tensor([0.01, 0.0, 0.02, 30.0])) is None  # sparse counts: no typical scale
    assert mixed_scale(torch.tensor([1.0, 1.2, 15.0])) is None  # under the large bar
