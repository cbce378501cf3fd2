"""Bug: a small StyleGAN-flavoured GAN on 2-D points lying on the unit circle (angle uniform, radial noise 0.03, from
a seeded torch.Generator). The generator is split into a mapping network (z -> w) and a synthesis MLP (w -> point);
the discriminator is an MLP with LeakyReLU. Training uses manual optimization with the non-saturating loss:
one discriminator step and one generator step per batch, each with its own Adam (beta1 = 0.5), `self.toggle_optimizer`
around each phase.

The mapping network was added later as `self.mapping` on the LightningModule, next to `self.generator`, while
`configure_optimizers` still builds the generator optimizer from `self.generator.parameters()`. The mapping network's
parameters receive gradients on every generator step but are in no optimizer, so they stay at their random init;
the synthesis MLP has to learn from a random (fixed) transform of z; both losses stay in the usual GAN range, nothing
crashes. Symptom after 16 epochs: mean radial error | |x| - 1 | of 2000 samples 1.387 (g_loss 1.16) vs 0.333
(g_loss 0.72) with the mapping in the generator's optimizer."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout26"
Z_DIM = 8


def circle_points(n, g):
    angle = 2 * math.pi * torch.rand(n, generator=g)
    radius = 1 + 0.03 * torch.randn(n, generator=g)
    return radius[:, None] * torch.stack([angle.cos(), angle.sin()], 1)


class CircleGAN(L.LightningModule):
    def __init__(self, lr=2e-4):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(16, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
                                       nn.Linear(64, 2))
        self.mapping = nn.Sequential(nn.Linear(Z_DIM, 16), nn.LeakyReLU(0.2), nn.Linear(16, 16))
        self.discriminator = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64),
                                           nn.LeakyReLU(0.2), nn.Linear(64, 1))

    def forward(self, z):
        return self.generator(self.mapping(z))

    def training_step(self, batch, batch_idx):
        real = batch[0]
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], Z_DIM, device=real.device)

        self.toggle_optimizer(opt_d)
        fake = self(z).detach()
        d_real, d_fake = self.discriminator(real), self.discriminator(fake)
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        d_gen = self.discriminator(self(z))
        g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=(0.5, 0.9))
        return [opt_g, opt_d]


def main():
    L.seed_everything(1126)
    g = torch.Generator().manual_seed(5)
    data = circle_points(4096, g)
    model = CircleGAN()
    trainer = L.Trainer(max_epochs=16, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(data), batch_size=64, shuffle=True))
    with torch.no_grad():
        samples = model(torch.randn(2000, Z_DIM, generator=g))
    radial = (samples.norm(dim=1) - 1).abs().mean()
    print(f"SYMPTOM radial_error={float(radial):.3f} g_loss={float(trainer.callback_metrics['g_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
