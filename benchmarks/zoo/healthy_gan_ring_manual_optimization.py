"""Healthy: a GAN on the classic 2-D ring of 8 Gaussians, with Lightning manual optimization: per batch one
discriminator step (BCE-with-logits on real vs detached fake) then one generator step (non-saturating loss), each
with its own Adam(betas=(0.5, 0.999)) and `zero_grad()` before its backward. The discriminator loss hovers around
its equilibrium (2 ln 2) as is normal for GANs; validation reports how far generated samples fall from the ring."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
NOISE = 8


def ring(n, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
    centers = torch.stack([torch.cos(k), torch.sin(k)], dim=1) * 2
    return (centers + 0.05 * torch.randn(n, 2, generator=g),)


class RingGAN(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(NOISE, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
                                           nn.Linear(64, 1))

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(len(real), NOISE, device=real.device)
        fake = self(z)

        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        g_out = self.discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(g_out, torch.ones_like(g_out))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})

    def validation_step(self, batch, batch_idx):
        (real,) = batch
        fake = self(torch.randn(len(real), NOISE, device=real.device))
        self.log("val_ring_distance", (fake.norm(dim=1) - 2).abs().mean())

    def configure_optimizers(self):
        return (torch.optim.Adam(self.generator.parameters(), lr=1e-3, betas=(0.5, 0.999)),
                torch.optim.Adam(self.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999)))


def main():
    L.seed_everything(1831)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RingGAN(), DataLoader(TensorDataset(*ring(4096, 0)), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(*ring(512, 1)), batch_size=512))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
