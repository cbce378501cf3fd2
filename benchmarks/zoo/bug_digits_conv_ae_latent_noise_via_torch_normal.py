"""Convolutional autoencoder on sklearn's 8x8 digits with a noisy 12-d bottleneck (a cheap regulariser that makes
nearby codes decode to similar images; the codes are later used for retrieval). Encoder: two strided convs and a
linear layer; decoder: linear + two transposed convs; MSE reconstruction on pixels in [0, 1]; validation on a
held-out 20 %.

Bug: the bottleneck noise is written `z = torch.normal(z, self.noise_std)` - "sample around the code" reads
naturally and the shapes work. But `torch.normal` is a sampling op whose derivative with respect to its mean is
defined as zero, so no gradient reaches the encoder at all: it stays at its random initialisation, and the
decoder learns to reconstruct from random projections of the image. Training loss falls (the decoder learns
something), so it looks like a slow model rather than a broken one.
Measured symptom: val MSE 0.068 vs 0.009 with the fix (`z = z + self.noise_std * torch.randn_like(z)`); the
encoder's weights move 0.0 from their initial values.
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout11"


class NoisyAE(L.LightningModule):
    def __init__(self, latent=12, noise_std=0.1, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.LeakyReLU(0.1),       # 4x4
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.1),      # 2x2
            nn.Flatten(), nn.Linear(64 * 4, latent))
        self.decoder = nn.Sequential(
            nn.Linear(latent, 64 * 4), nn.LeakyReLU(0.1), nn.Unflatten(1, (64, 2, 2)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.1),   # 4x4
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Sigmoid())        # 8x8

    def encode(self, x):
        return self.encoder(x)

    def forward(self, x):
        z = self.encode(x)
        if self.training:
            z = torch.normal(z, self.hparams.noise_std)
        return self.decoder(z)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_mse", F.mse_loss(self(x), x))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    x = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    tr, va = x[perm[:1437]], x[perm[1437:]]
    model = NoisyAE()
    enc0 = [p.detach().clone() for p in model.encoder.parameters()]
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="digits_ae"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(va), batch_size=360))
    model.eval()
    with torch.no_grad():
        mse = F.mse_loss(model(va), va).item()
    moved = sum((p.detach() - p0).norm().item() for p, p0 in zip(model.encoder.parameters(), enc0))
    print(f"SYMPTOM val_mse={mse:.4f} encoder_weight_change={moved:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
