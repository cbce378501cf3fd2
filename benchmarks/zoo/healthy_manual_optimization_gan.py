"""Healthy: a small GAN on digits (64 pixels in [0, 1]) with manual optimization: two optimizers (generator,
discriminator), `self.manual_backward`, the non-saturating generator loss and `self.toggle_optimizer`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class DigitsGAN(L.LightningModule):
    def __init__(self, latent=16, lr=2e-4):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(latent, 128), nn.LeakyReLU(0.2), nn.Linear(128, 64), nn.Sigmoid())
        self.discriminator = nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], self.hparams.latent, device=self.device)

        self.toggle_optimizer(opt_d)
        fake = self(z).detach()
        d_real, d_fake = self.discriminator(real), self.discriminator(fake)
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))) / 2
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

        self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, prog_bar=True)

    def configure_optimizers(self):
        lr = self.hparams.lr
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        return [opt_g, opt_d]


def main():
    L.seed_everything(1234)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsGAN(), DataLoader(TensorDataset(x, torch.tensor(d.target)), batch_size=64, shuffle=True))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
