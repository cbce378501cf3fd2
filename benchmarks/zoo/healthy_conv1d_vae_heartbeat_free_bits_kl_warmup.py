"""Healthy: a 1-D convolutional VAE on synthetic heartbeat-like traces (one 96-sample beat: P wave, QRS complex
and T wave with per-beat variation in timing, amplitude and baseline wander, plus sensor noise). Gaussian decoder
with a fixed observation noise, an 8-d latent, KL annealed linearly from 0 to 1 over the first 3 epochs with a
free-bits floor of 0.1 nat per latent dimension, AdamW with cosine decay. Final val recon MSE about 0.04 (standardised
units; predicting the mean beat gives 0.73), all 8 latent dimensions active."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
T = 96


def beats(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T).float()[None]

    def bump(center, width, amp):
        return amp[:, None] * torch.exp(-((t - center[:, None]) ** 2) / (2 * width[:, None] ** 2))

    def r(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    qrs = r(40, 52)
    x = (bump(qrs - r(18, 26), r(3, 5), r(0.1, 0.25))                # P
         + bump(qrs, r(1.2, 2.0), r(0.8, 1.4))                       # R
         - bump(qrs + 3, r(1.0, 1.5), r(0.1, 0.3))                   # S
         + bump(qrs + r(22, 34), r(5, 8), r(0.2, 0.45)))             # T
    wander = r(-0.1, 0.1)[:, None] * torch.sin(6.283 * t / T * r(0.3, 1.0)[:, None] + r(0, 6.28)[:, None])
    return (x + wander + 0.03 * torch.randn(n, T, generator=g)).unsqueeze(1)


class BeatVAE(L.LightningModule):
    def __init__(self, latent=8, lr=2e-3, obs_std=0.1, free_bits=0.1, warmup_epochs=3):
        super().__init__()
        self.save_hyperparameters()
        self.enc = nn.Sequential(
            nn.Conv1d(1, 32, 5, stride=2, padding=2), nn.SiLU(),      # 48
            nn.Conv1d(32, 64, 5, stride=2, padding=2), nn.SiLU(),     # 24
            nn.Conv1d(64, 64, 5, stride=2, padding=2), nn.SiLU(),     # 12
            nn.Flatten(), nn.Linear(64 * 12, 2 * latent))
        self.dec = nn.Sequential(
            nn.Linear(latent, 64 * 12), nn.SiLU(), nn.Unflatten(1, (64, 12)),
            nn.ConvTranspose1d(64, 64, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose1d(64, 32, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose1d(32, 1, 4, stride=2, padding=1))

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.dec(z), mu, logvar

    def terms(self, x):
        recon, mu, logvar = self(x)
        nll = 0.5 * ((recon - x) / self.hparams.obs_std).pow(2).sum((1, 2)).mean()
        kl_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(0)      # per latent dimension, batch-averaged
        return recon, nll, kl_dim

    def kl_weight(self):
        steps = self.hparams.warmup_epochs * self.trainer.num_training_batches
        return min(1.0, self.global_step / max(1, steps))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        _, nll, kl_dim = self.terms(x)
        kl = torch.clamp(kl_dim, min=self.hparams.free_bits).sum()
        loss = nll + self.kl_weight() * kl
        self.log_dict({"train_nll": nll, "train_kl": kl_dim.sum(), "beta": self.kl_weight()})
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        recon, nll, kl_dim = self.terms(x)
        self.log_dict({"val_elbo": -(nll + kl_dim.sum()), "val_mse": F.mse_loss(recon, x)})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2718)
    tr, va = beats(3000, seed=1), beats(500, seed=2)
    mu, sd = tr.mean(), tr.std()
    tr, va = (tr - mu) / sd, (va - mu) / sd
    model = BeatVAE()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="beat_vae"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(va), batch_size=250))
    model.eval()
    with torch.no_grad():
        recon, nll, kl_dim = model.terms(va)
    print(f"SYMPTOM val_mse={F.mse_loss(recon, va):.4f} val_kl={kl_dim.sum():.2f} "
          f"active_dims={(kl_dim > 0.1).sum().item()} mean_beat_mse={va.var(0).mean():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
