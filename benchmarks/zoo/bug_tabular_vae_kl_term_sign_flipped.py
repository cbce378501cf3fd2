"""Bug (loss): a tabular VAE for anomaly scoring of breast-cancer measurements writes the KL term as
`0.5 * sum(1 + logvar - mu^2 - exp(logvar))`, the textbook expression without its leading minus, and adds it to the
reconstruction loss. That quantity is -KL, so minimizing the loss maximizes the KL divergence: the encoder's means
and log-variances run away and the "ELBO" falls without bound. Symptom: val reconstruction MSE per feature 0.74 (and a
training loss of -1e22 after 40 epochs) vs 0.20 (training loss 11.5) with `-0.5 * sum(...)`.

Model: MLP encoder/decoder (SiLU, LayerNorm) with a 6-d latent on the 30 standardized breast-cancer features
(scaler fitted on the training rows), Gaussian decoder (MSE summed over features), beta 1, Adam, per-sample ELBO
averaged over the batch."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"weight-growth", "exploding-gradient", "non-finite"}
SPLIT = "heldout5"


class TabularVAE(nn.Module):
    def __init__(self, d_in=30, latent=6, hidden=64):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d_in, hidden), nn.LayerNorm(hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU())
        self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, d_in))

    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar


class LitVAE(L.LightningModule):
    def __init__(self, beta=1.0):
        super().__init__()
        self.model, self.beta = TabularVAE(), beta

    def elbo_terms(self, x):
        recon, mu, logvar = self.model(x)
        rec = F.mse_loss(recon, x, reduction="none").sum(1).mean()
        kl = (0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        return rec, kl

    def training_step(self, batch, batch_idx):
        (x,) = batch
        rec, kl = self.elbo_terms(x)
        loss = rec + self.beta * kl
        self.log_dict({"train_loss": loss, "train_kl": kl})
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        rec, kl = self.elbo_terms(x)
        self.log("val_loss", rec + self.beta * kl)
        self.log("val_recon_mse", rec / x.shape[1])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(103)
    d = load_breast_cancer()
    x_tr, x_va = train_test_split(d.data, test_size=0.25, random_state=3)
    scaler = StandardScaler().fit(x_tr)
    x_tr = torch.tensor(scaler.transform(x_tr), dtype=torch.float32)
    x_va = torch.tensor(scaler.transform(x_va), dtype=torch.float32)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitVAE(), DataLoader(TensorDataset(x_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va), batch_size=200))
    m = trainer.callback_metrics
    print(f"val_recon_mse={m['val_recon_mse'].item():.3f} train_loss={m['train_loss'].item():.3g}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
