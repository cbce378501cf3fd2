"""weight-growth on layers stepped late: a layer's weight history starts at its first reading, never at zero.

A GAN generator stepped once every five batches under manual optimization is first read at its first step; the rows
before it used to hold zeros, so the judgements took it for a zero-initialised layer and never judged its growth.
A backbone unfrozen at epoch 2 (by ``requires_grad_``, or added to the optimizer then, as ``BaseFinetuning`` does)
is flat until then: its history is the weights it had, which a healthy fine-tune does not make look like growth.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, events, fit, loader, read_report, serious
from torch import nn

_NORM_CHECKS = ("weight-growth", "update-ratio")


def _norm_findings(report: dict) -> list[str]:
    return [f"{f['check']}: {f['message']}" for f in serious(report) if f["check"] in _NORM_CHECKS]


class _GAN(L.LightningModule):
    """A non-saturating GAN on digit images, its discriminator stepped on every batch and its generator on every fifth
    (manual optimization); ``reward``: a generator term that rewards the scale of its output layer's weights (a
    regulariser with the wrong sign, no weight decay to bound it)."""

    def __init__(self, reward: float = 0.0):
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64))
        self.discriminator = nn.Sequential(nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
        self.reward = reward

    def training_step(self, batch, batch_idx):
        opt_g, opt_d = self.optimizers()
        real = batch[0]
        z = torch.randn(real.shape[0], 16)
        fake = self.generator(z)
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        if (batch_idx + 1) % 5 == 0:
            logits = self.discriminator(fake)
            loss_g = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            loss_g = loss_g - self.reward * self.generator[2].weight.norm()
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()

    def configure_optimizers(self):
        return (torch.optim.Adam(self.generator.parameters(), lr=2e-2, betas=(0.5, 0.9)),
                torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.9)))


@pytest.mark.parametrize("reward", [0.0, 1.0])
def test_generator_stepped_every_fifth_batch_is_judged_from_its_first_reading(tmp_path, reward):
    L.seed_everything(0)
    x, y = digits()
    x = (x - x.mean()) / x.std()
    model = _GAN(reward)
    first = torch.cat([p.detach().flatten() for p in model.generator[2].parameters()]).norm().item()
    trainer = fit(model, tmp_path, loader(x[:1280], y[:1280], batch_size=16), max_epochs=5,
                  log_every_n_steps=7)  # logging steps that miss the generator's
    report = read_report(trainer.log_dir)
    found = serious(report, "weight-growth")
    if not reward:
        assert not _norm_findings(report), _norm_findings(report)
        # the generator's weights charted at every logging step, never as zero on the steps it did not take
        charted = [e.value for e in events(trainer.log_dir).Scalars("sanity/weight_norm/generator.2")]
        assert len(charted) > 10 and min(charted) > 0.5 * first, charted
        return
    assert model.generator[2].weight.norm().item() > 10 * first  # the bug did what it should
    assert any("generator.2" in f["data"]["layers"] for f in found), _norm_findings(report)
    finding = next(f for f in found if "generator.2" in f["data"]["layers"])
    if finding["data"]["layers"][0] == "generator.2":  # measured from its first reading, not from zero
        assert finding["data"]["first_norm"] == pytest.approx(first, rel=1e-3)


class _Unfreezing(L.LightningModule):
    """A digits classifier whose backbone is frozen for two epochs, then fine-tuned at a tenth of the head's lr;
    ``in_optimizer``: the backbone is in the optimizer from the start (else added as a param group at unfreeze)."""

    def __init__(self, in_optimizer: bool):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.backbone.requires_grad_(False)
        self.in_optimizer = in_optimizer

    def on_train_epoch_start(self):
        if self.current_epoch == 2:
            self.backbone.requires_grad_(True)
            if not self.in_optimizer:
                self.optimizers().optimizer.add_param_group({"params": list(self.backbone.parameters()), "lr": 1e-4})

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.head(self.backbone(x)), y)

    def configure_optimizers(self):
        groups = [{"params": self.head.parameters(), "lr": 1e-3}]
        if self.in_optimizer:
            groups.append({"params": self.backbone.parameters(), "lr": 1e-4})
        return torch.optim.Adam(groups)


@pytest.mark.parametrize("in_optimizer", [True, False])
def test_healthy_gradual_unfreezing_is_not_weight_growth(tmp_path, in_optimizer):
    L.seed_everything(0)
    x, y = digits()
    x = (x - x.mean()) / x.std()
    model = _Unfreezing(in_optimizer)
    frozen = model.backbone[0].weight.detach().clone()
    report = read_report(fit(model, tmp_path, loader(x[:1280], y[:1280], batch_size=32), max_epochs=6).log_dir)
    assert not torch.equal(model.backbone[0].weight, frozen)  # the backbone was unfrozen and trained
    assert not _norm_findings(report), _norm_findings(report)
