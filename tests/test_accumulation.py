"""Accumulating gradients under manual optimization, judged per optimizer and per stretch between resets.

Lightning resets ``.grad`` before every validation run, so a run that never zeroes grows its gradient norm within
each epoch and falls back at each validation: the bug must be named there too, and with two optimizers.
"""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

_NOISE = 4


def _ring(n, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
    return torch.stack([torch.cos(k), torch.sin(k)], dim=1) * 2 + 0.05 * torch.randn(n, 2, generator=g)


class _RingGAN(L.LightningModule):
    """A small GAN with two optimizers; how the discriminator's gradients are reset is switchable."""

    def __init__(self, reset):
        super().__init__()
        self.automatic_optimization = False
        self.reset = reset  # "none" (the bug), "none_grads" (zero_grad()), "zeros" (zero_grad(set_to_none=False))
        self.generator = nn.Sequential(nn.Linear(_NOISE, 32), nn.ReLU(), nn.Linear(32, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        fake = self.generator(torch.randn(len(real), _NOISE))
        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        if self.reset != "none":
            opt_d.zero_grad(set_to_none=self.reset == "none_grads")
        self.manual_backward(d_loss)
        opt_d.step()
        g_out = self.discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(g_out, torch.ones_like(g_out))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()

    def validation_step(self, batch, batch_idx):
        (real,) = batch
        self.log("val_ring", (self.generator(torch.randn(len(real), _NOISE)).norm(dim=1) - 2).abs().mean())

    def configure_optimizers(self):
        return (torch.optim.Adam(self.generator.parameters(), lr=1e-3, betas=(0.5, 0.999)),
                torch.optim.Adam(self.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999)))


@pytest.mark.parametrize("reset", ["none", "none_grads", "zeros"])
def test_gan_discriminator_without_zero_grad_is_named_with_its_optimizer(tmp_path, reset):
    L.seed_everything(0)
    train = DataLoader(TensorDataset(_ring(1536, 0)), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(_ring(256, 1)), batch_size=256)
    report = read_report(fit(_RingGAN(reset), tmp_path, train, val, max_epochs=3).log_dir)
    found = serious(report, "exploding-gradient")
    if reset != "none":
        assert not found, found
        return
    (finding,) = found
    data = finding["data"]
    assert data["kind"] == "accumulating" and data["optimizer"] == "optimizer 1 (Adam)", data
    # One stretch per epoch (Lightning resets .grad before validation); the norm falls back at each reset.
    assert data["segments"] == 3 and data["growth"] >= 3 and data["fall_at_reset"] >= 3, data
    assert "zero_grad" in finding["advice"]
