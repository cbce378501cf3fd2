"""Healthy: a DCGAN (Radford et al., as in the PyTorch examples) on 8x8 digits scaled to [-1, 1], trained with
Lightning's manual optimization: generator of transposed convolutions with BatchNorm and ReLU ending in tanh,
discriminator of strided convolutions with LeakyReLU(0.2) (no BatchNorm on its first layer), all conv weights
`normal_(0, 0.02)` and BatchNorm weights `normal_(1, 0.02)`, two Adam optimizers (lr 2e-4, betas (0.5, 0.999)),
non-saturating BCE-with-logits losses, the discriminator step on `fake.detach()`, then the generator step.
Own metric: a logistic-regression digit classifier fitted on the real images assigns the generated samples a mean
confidence of 0.72 over 10 of 10 classes (untrained generator: 0.14)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout6"
Z_DIM = 32


class Generator(nn.Module):
    def __init__(self, z_dim=Z_DIM, ngf=32):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(z_dim, ngf * 4, 2, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, ndf=32):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 2, 1, 0, bias=False))

    def forward(self, x):
        return self.main(x).view(-1)


def weights_init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGAN(L.LightningModule):
    def __init__(self, lr=2e-4):
        super().__init__()
        self.automatic_optimization = False
        self.lr = lr
        self.generator = Generator()
        self.discriminator = Discriminator()
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], Z_DIM, device=self.device)
        fake = self.generator(z)

        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        d_gen = self.discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})

    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=(0.5, 0.999))
        return [opt_g, opt_d]


def sample_quality(generator, clf, n=500):
    generator.eval()
    with torch.no_grad():
        samples = generator(torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(1))).flatten(1).numpy()
    generator.train()
    proba = clf.predict_proba(samples)
    return proba.max(1).mean(), len(np.unique(proba.argmax(1)))


def main():
    L.seed_everything(64)
    d = load_digits()
    x = d.images.reshape(-1, 64) / 8.0 - 1.0
    clf = LogisticRegression(max_iter=2000).fit(x, d.target)
    model = DCGAN()
    before, _ = sample_quality(model.generator, clf)
    real = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(real), batch_size=64, shuffle=True, drop_last=True))
    conf, n_classes = sample_quality(model.generator, clf)
    print(f"sample_confidence={conf:.3f} classes_covered={n_classes} untrained_confidence={before:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
