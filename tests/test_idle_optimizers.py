"""update-ratio, kind idle-optimizer: under manual optimization an optimizer that never steps while its parameters
get gradients (a GAN's generator phase stepping the discriminator's optimizer) is named; the healthy GAN is not."""

import lightning as L
import torch
from helpers import digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.checks.idle_optimizers import idle_parameters


class GAN(L.LightningModule):
    """A small GAN on digits; ``g_phase_steps_d``: the generator phase ends in ``opt_d.step()`` (the bug)."""

    def __init__(self, g_phase_steps_d: bool, raw_optimizers: bool = False):
        super().__init__()
        self.raw_optimizers = raw_optimizers
        self.automatic_optimization = False
        self.g_phase_steps_d = g_phase_steps_d
        self.generator = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 64), nn.Tanh())
        self.discriminator = nn.Sequential(nn.Linear(64, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        real = batch[0] / 8.0 - 1.0
        opt_g, opt_d = self.optimizers(use_pl_optimizer=not self.raw_optimizers)
        bce = nn.functional.binary_cross_entropy_with_logits
        fake = self(torch.randn(real.shape[0], 16))
        d_loss = bce(self.discriminator(real), torch.ones(len(real), 1)) + bce(
            self.discriminator(fake.detach()), torch.zeros(len(real), 1))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = bce(self.discriminator(fake), torch.ones(len(real), 1))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        (opt_d if self.g_phase_steps_d else opt_g).step()

    def configure_optimizers(self):
        return (torch.optim.Adam(self.generator.parameters(), lr=2e-4),
                torch.optim.Adam(self.discriminator.parameters(), lr=2e-4))


def _run(model, tmp_path):
    L.seed_everything(0)
    t = fit(model, tmp_path, loader(*digits(256), batch_size=64), None,
            callbacks=[NormMonitor(), SanitySummary(print_summary=False)], max_epochs=2, limit_val_batches=0,
            num_sanity_val_steps=0)
    return read_report(t.log_dir)


def test_generator_phase_stepping_the_discriminator_optimizer_is_named(tmp_path):
    report = _run(GAN(g_phase_steps_d=True), tmp_path)
    (finding,) = serious(report, "update-ratio")
    assert finding["severity"] == "warning" and finding["where"] == "generator"
    assert finding["data"]["kind"] == "idle-optimizer" and finding["data"]["optimizer"] == 0
    assert finding["data"]["other_steps"] == 16  # opt_d: two steps on each of 2 x 4 batches
    assert "never took a step" in finding["message"]


def test_healthy_gan_is_silent(tmp_path):
    assert serious(_run(GAN(g_phase_steps_d=False), tmp_path), "update-ratio") == []
    # Raw optimizers step without Lightning's hooks: no step is counted, but the parameters move.
    assert serious(_run(GAN(g_phase_steps_d=False, raw_optimizers=True), tmp_path / "raw"), "update-ratio") == []


def test_idle_parameters_leaves_out_tensors_a_stepping_optimizer_holds():
    shared, own = nn.Linear(2, 2), nn.Linear(2, 2)
    stepping = torch.optim.SGD(shared.parameters(), lr=0.1)
    idle = torch.optim.SGD([*shared.parameters(), *own.parameters()], lr=0.1)
    ((i, params),) = idle_parameters([stepping, idle], {id(stepping): 3})
    assert i == 1 and [id(p) for p in params] == [id(own.weight), id(own.bias)]
    assert idle_parameters([stepping, idle], {id(stepping): 3, id(idle): 1}) == []
