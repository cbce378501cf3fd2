"""Bug: a GAN under manual optimization detaches the generated batch once, at creation (`fake = G(z).detach()`, "so
the discriminator step does not backprop into G"), and reuses it for the generator's loss: the generator loss only
reaches the discriminator, the generator's parameters get no gradient and `opt_g.step()` never moves them. Synthetic
"two moons" points (a seeded torch.Generator), MLP generator and discriminator, non-saturating loss, Adam (betas 0.5,
0.999). Generated points end 0.316 from the nearest real point, exactly as before training, vs 0.075 when the
generator step uses the undetached fakes (healthy_gan_two_moons_manual_opt)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient", "update-ratio"}
SPLIT = "heldout2"


def two_moons(n, gen):
    t = torch.rand(n, generator=gen) * math.pi
    upper = torch.rand(n, generator=gen) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=gen)
    return (pts - torch.tensor([0.5, 0.25])) / torch.tensor([0.85, 0.5])


class MoonsGAN(L.LightningModule):
    def __init__(self, noise_dim=8, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(noise_dim, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64),
                                       nn.LeakyReLU(0.2), nn.Linear(64, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64),
                                           nn.LeakyReLU(0.2), nn.Linear(64, 1))

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(len(real), self.hparams.noise_dim, device=real.device)
        fake = self.generator(z).detach()  # BUG: the generator step below needs the graph

        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        gen_logits = self.discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})

    def configure_optimizers(self):
        betas = (0.5, 0.999)
        return (torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas))


def distance_to_data(points, real):
    return torch.cdist(points, real).min(dim=1).values.mean().item()


def main():
    L.seed_everything(31)
    gen = torch.Generator().manual_seed(31)
    real = two_moons(4096, gen)
    held_out = two_moons(2000, gen)
    model = MoonsGAN()
    z = torch.randn(1000, 8, generator=gen)
    with torch.no_grad():
        before = distance_to_data(model(z), held_out)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(real), batch_size=128, shuffle=True))
    with torch.no_grad():
        after = distance_to_data(model(z), held_out)
    print(f"dist_before={before:.3f} dist_after={after:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
