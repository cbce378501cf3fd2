"""Healthy: a GAN that generates short audio-like snippets: 32 samples of a pure tone with random frequency (0.05 to
0.2 cycles per sample), random phase and amplitude 0.8, from a seeded torch.Generator. MLP generator (16-d noise,
tanh output scaled by 0.9) and MLP discriminator with LeakyReLU; non-saturating GAN loss written with softplus.

Manual optimisation with two Adam optimizers (betas (0.0, 0.99), as usual for R1-regularised GANs). Each step first
updates D: `toggle_optimizer(opt_d)`, real and detached fake logits, softplus losses; every 4th step a lazy R1
penalty gamma/2 * E||grad_x D(x_real)||^2 is added, scaled by the lazy interval, with the gradient taken with
`create_graph=True` so the penalty itself is differentiated through. Then G is updated on a fresh batch of fakes
that is NOT detached, so its gradient flows through D into G, while the toggle sets `requires_grad=False` on D's
parameters so this pass leaves no gradient on them. Both losses start at their expected values (2 ln 2 = 1.386 for
D, ln 2 = 0.693 for G). Quality is checked with the fraction of each sample's energy in its strongest FFT bin (real
tones: 0.79). Measured after 12 epochs: spectral peak fraction of generated snippets 0.48 (0.20 at initialisation),
R1 penalty small and stable."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"
LENGTH, NOISE = 32, 16


def tone_snippets(n, g):
    freq = 0.05 + 0.15 * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    return 0.8 * torch.sin(2 * math.pi * freq * torch.arange(LENGTH).float() + phase)


def peak_fraction(x):
    power = torch.fft.rfft(x, dim=1).abs().pow(2)[:, 1:]
    return float((power.max(1).values / power.sum(1)).mean())


class ToneGAN(L.LightningModule):
    def __init__(self, hidden=128, lr=1e-3, r1_gamma=1.0, r1_every=4):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(NOISE, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                       nn.Linear(hidden, LENGTH), nn.Tanh())
        self.discriminator = nn.Sequential(nn.Linear(LENGTH, hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, z):
        return 0.9 * self.generator(z)

    def training_step(self, batch, batch_idx):
        real = batch[0]
        opt_d, opt_g = self.optimizers()
        z = torch.randn(real.shape[0], NOISE, device=real.device)

        self.toggle_optimizer(opt_d)
        lazy = batch_idx % self.hparams.r1_every == 0
        real_in = real.detach().requires_grad_(lazy)
        real_logits = self.discriminator(real_in)
        fake_logits = self.discriminator(self(z).detach())
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        if lazy:
            (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
            r1 = grad.pow(2).sum(1).mean()
            d_loss = d_loss + 0.5 * self.hparams.r1_gamma * self.hparams.r1_every * r1
            self.log("r1", r1)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        g_loss = F.softplus(-self.discriminator(self(torch.randn_like(z)))).mean()
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})

    def configure_optimizers(self):
        betas = (0.0, 0.99)
        return [torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas),
                torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)]


def main():
    L.seed_everything(2212)
    real = tone_snippets(4096, torch.Generator().manual_seed(13))
    model = ToneGAN()
    with torch.no_grad():
        before = peak_fraction(model(torch.randn(1000, NOISE)))
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(real), batch_size=64, shuffle=True, drop_last=True))
    with torch.no_grad():
        after = peak_fraction(model(torch.randn(1000, NOISE)))
    print(f"SYMPTOM peak_fraction before={before:.2f} after={after:.2f} real={peak_fraction(real):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
