"""Bug: the VAE loss mixes reductions: the reconstruction term is `F.mse_loss(recon, x)` (mean over batch and the 64
pixels) while the KL term is `-0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())` (summed over batch and latent
dims). The KL is weighted about 64 * batch_size times more than intended, the posterior collapses onto the prior
and the decoder outputs the same average digit whatever the input. Model: MLP VAE (64-256-128 encoder with
LayerNorm+GELU, 8-d latent, mirrored decoder) on standardized 8x8 digits, Adam with a ReduceLROnPlateau on the
validation loss, LightningDataModule. Own metric: val reconstruction MSE (posterior mean). Fixed (both terms
summed per sample, then averaged over the batch): val recon MSE 0.21. With the bug: 0.84, close to the per-pixel
variance (the output ignores its input)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"constant-output"}
SPLIT = "heldout4"


class DigitsVAEData(L.LightningDataModule):
    def __init__(self, batch_size=64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        x = torch.tensor(load_digits().data, dtype=torch.float32)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        tr, va = x[perm[:1450]], x[perm[1450:]]
        mean, std = tr.mean(0), tr.std(0).clamp(min=1.0)
        self.train_ds, self.val_ds = TensorDataset((tr - mean) / std), TensorDataset((va - mean) / std)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=400)


class VAE(nn.Module):
    def __init__(self, d_in=64, latent=8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d_in, 256), nn.LayerNorm(256), nn.GELU(), nn.Linear(256, 128), nn.GELU())
        self.mu, self.logvar = nn.Linear(128, latent), nn.Linear(128, latent)
        self.dec = nn.Sequential(nn.Linear(latent, 128), nn.GELU(), nn.Linear(128, 256), nn.LayerNorm(256), nn.GELU(),
                                 nn.Linear(256, d_in))

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.dec(z), mu, logvar


class LitVAE(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.vae = VAE()

    def forward(self, x):
        return self.vae(x)[0]

    def elbo(self, x):
        recon, mu, logvar = self.vae(x)
        rec = F.mse_loss(recon, x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())  # BUG: sum over batch vs mean recon
        return rec + kl, recon

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss, _ = self.elbo(x)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        loss, recon = self.elbo(x)
        self.log("val_loss", loss)
        self.log("val_recon_mse", F.mse_loss(recon, x))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(81)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitVAE(), datamodule=DigitsVAEData())
    print(f"val_recon_mse={trainer.callback_metrics['val_recon_mse'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
