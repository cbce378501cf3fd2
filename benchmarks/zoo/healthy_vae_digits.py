"""Healthy: a variational autoencoder on digits (64 pixels in [0, 1]): reparameterised sampling in forward (in
training AND evaluation, as many VAE implementations do), loss = BCE reconstruction + KL divergence, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None


class VAE(L.LightningModule):
    def __init__(self, latent=8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(64, 128), nn.ReLU())
        self.mu, self.logvar = nn.Linear(128, latent), nn.Linear(128, latent)
        self.dec = nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 64))

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.dec(z), mu, logvar

    def elbo(self, x):
        logits, mu, logvar = self(x)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]
        return recon + kl, recon, kl

    def training_step(self, batch, batch_idx):
        loss, recon, kl = self.elbo(batch)
        self.log_dict({"train_loss": loss, "recon": recon, "kl": kl})
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.elbo(batch)[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(83)
    pixels = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(VAE(), DataLoader(pixels[:1500], batch_size=64, shuffle=True), DataLoader(pixels[1500:], batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
