"""Healthy: a tabular VAE on the standardized wine features with a Gaussian decoder whose per-feature log-variance
is a learned `nn.Parameter` (registered on the module, so `self.parameters()` hands it to the optimizer). The
encoder outputs mean and log-variance of a 4-d latent, sampling uses the reparameterisation trick
(mu + exp(0.5 * logvar) * eps), the reconstruction term is the full Gaussian negative log-likelihood summed over
features, the KL to N(0, I) is summed over latent dimensions, both averaged over the batch (same per-sample scale).
The KL weight is warmed up linearly per optimizer step from 0 to 1 over the first 150 steps (computed from
`global_step`, not from a scheduler), which avoids early posterior collapse; validation always reports the true
negative ELBO (beta = 1) so epochs stay comparable. The scaler is fitted on training rows only.
Own metric (seed 91, 60 epochs): val negative ELBO 15.65 nats per row (val KL 2.50),
below the 18.4 nats of an independent standard normal per feature."""

import math

import lightning as L
import torch
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout27"


class GaussianVAE(L.LightningModule):
    def __init__(self, n_features=13, hidden=64, latent=4, lr=2e-3, warmup_steps=150):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, n_features))
        self.dec_logvar = nn.Parameter(torch.zeros(n_features))

    def elbo_terms(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        x_mu = self.decoder(z)
        nll = 0.5 * (self.dec_logvar + (x - x_mu).pow(2) / self.dec_logvar.exp() + math.log(2 * math.pi))
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
        return nll.sum(1).mean(), kl.sum(1).mean()

    def training_step(self, batch, batch_idx):
        (x,) = batch
        nll, kl = self.elbo_terms(x)
        beta = min(1.0, self.global_step / self.hparams.warmup_steps)
        loss = nll + beta * kl
        self.log_dict({"train_loss": loss, "train_nll": nll, "train_kl": kl, "beta": beta},
                      on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        nll, kl = self.elbo_terms(x)
        self.log("val_loss", nll + kl)
        self.log("val_kl", kl)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(91)
    X, y = load_wine(return_X_y=True)
    X_tr, X_va = train_test_split(X, test_size=0.25, random_state=9, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    train = TensorDataset(torch.tensor(scaler.transform(X_tr), dtype=torch.float32))
    val = TensorDataset(torch.tensor(scaler.transform(X_va), dtype=torch.float32))
    trainer = L.Trainer(max_epochs=60, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GaussianVAE(), DataLoader(train, batch_size=16, shuffle=True, drop_last=True),
                DataLoader(val, batch_size=64))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_neg_elbo={m['val_loss'].item():.2f} val_kl={m['val_kl'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
