"""Bug: a Gaussian VAE on the scikit-learn breast-cancer features (30 features, standardised with training
statistics), 6-d latent, used for anomaly scoring. The decoder predicts per-feature means and the model has a
learned per-feature observation noise `log_sigma`, so the reconstruction term is a proper Gaussian NLL whose scale
is learned rather than fixed. The optimizer uses two parameter groups, encoder (lr 2e-3) and decoder (lr 2e-3 with
weight decay), with a short linear KL warm-up.

The groups are built from `self.encoder.parameters()` and `self.decoder.parameters()`, and `log_sigma` lives on
the LightningModule itself, so it is in neither group: it gets a gradient every step but stays at 0 (sigma = 1)
forever. With unit noise on standardised data the reconstruction term is weak relative to the KL, which acts like
a beta of about 5, so the latent code carries less information and reconstructions are blurry; the loss still
falls smoothly. Symptom after 40 epochs: val reconstruction MSE 0.343 (sigma stuck at 1.00) vs 0.194 when
`log_sigma` is added to the optimizer (learned sigma 0.45 on average)."""

import lightning as L
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout22"


class GaussianVAE(L.LightningModule):
    def __init__(self, n_features=30, latent=6, hidden=64, lr=2e-3, warmup_steps=100):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, n_features))
        self.log_sigma = nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder(z), mu, logvar

    def _terms(self, x):
        x_hat, mu, logvar = self(x)
        nll = (0.5 * ((x - x_hat) / self.log_sigma.exp()).pow(2) + self.log_sigma).sum(1).mean()
        kl_per_dim = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
        return nll, kl_per_dim, x_hat

    def training_step(self, batch, batch_idx):
        nll, kl_per_dim, _ = self._terms(batch[0])
        beta = min(1.0, (self.global_step + 1) / self.hparams.warmup_steps)
        loss = nll + beta * kl_per_dim.sum(1).mean()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x = batch[0]
        nll, kl_per_dim, x_hat = self._terms(x)
        self.log("val_nelbo", nll + kl_per_dim.sum(1).mean())
        self.log("val_recon_mse", (x - x_hat).pow(2).mean())
        self.log("active_dims", (kl_per_dim.mean(0) > 0.05).sum().float())

    def configure_optimizers(self):
        return torch.optim.Adam([
            {"params": self.encoder.parameters()},
            {"params": self.decoder.parameters(), "weight_decay": 1e-4},
        ], lr=self.hparams.lr)


def main():
    L.seed_everything(2206)
    x = torch.tensor(load_breast_cancer().data, dtype=torch.float32)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(6))
    train, val = x[perm[:450]], x[perm[450:]]
    mean, std = train.mean(0), train.std(0)
    train, val = (train - mean) / std, (val - mean) / std
    model = GaussianVAE()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=119))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_recon_mse={float(m['val_recon_mse']):.3f} active_dims={int(m['active_dims'])} "
          f"mean_sigma={float(model.log_sigma.exp().mean()):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
