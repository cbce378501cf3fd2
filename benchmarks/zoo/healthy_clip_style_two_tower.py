"""Healthy: CLIP-style contrastive learning of two encoders on paired views. Each pair (a, b) comes from one latent
vector z through two different fixed random maps plus noise (synthetic, seeded torch.Generator); the encoders'
L2-normalised embeddings are scored with a learnable temperature (logit scale initialised to 1/0.07, clamped at
100) and a symmetric in-batch InfoNCE loss. Validation reports the loss and the top-1 retrieval accuracy
(chance is 1/batch). AdamW."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
LATENT, DA, DB = 8, 24, 32
MAP_A = torch.randn(LATENT, DA, generator=torch.Generator().manual_seed(11))
MAP_B = torch.randn(LATENT, DB, generator=torch.Generator().manual_seed(12))


def pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, LATENT, generator=g)
    a = torch.tanh(z @ MAP_A) + 0.1 * torch.randn(n, DA, generator=g)
    b = torch.tanh(z @ MAP_B) + 0.1 * torch.randn(n, DB, generator=g)
    return a, b


class TwoTower(L.LightningModule):
    def __init__(self, dim=32):
        super().__init__()
        self.enc_a = nn.Sequential(nn.Linear(DA, 64), nn.GELU(), nn.Linear(64, dim))
        self.enc_b = nn.Sequential(nn.Linear(DB, 64), nn.GELU(), nn.Linear(64, dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, a, b):
        za, zb = F.normalize(self.enc_a(a), dim=-1), F.normalize(self.enc_b(b), dim=-1)
        return self.logit_scale.exp().clamp(max=100) * za @ zb.T

    def _loss(self, batch):
        logits = self(*batch)
        target = torch.arange(len(logits), device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2, logits, target

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits, target = self._loss(batch)
        self.log("val_loss", loss)
        self.log("val_top1", (logits.argmax(1) == target).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)


def main():
    L.seed_everything(1821)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TwoTower(), DataLoader(TensorDataset(*pairs(3000, 0)), batch_size=64, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(*pairs(512, 1)), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
