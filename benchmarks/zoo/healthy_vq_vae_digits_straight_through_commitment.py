"""Healthy: a VQ-VAE on the 8x8 digits (pixels scaled to [0, 1]). A conv encoder maps each image to a 4x4 grid of
16-d vectors, each snapped to its nearest entry of a 32-entry codebook; the decoder reconstructs from the quantised
grid. The quantisation is non-differentiable, so the straight-through estimator `z + (q - z).detach()` carries the
decoder's gradient to the encoder, the codebook learns from `||sg(z) - q||^2` and the encoder from the commitment
term `0.25 * ||z - sg(q)||^2`. Adam, small batches. Final val reconstruction MSE 0.008 (the per-pixel variance is
0.14), 22 of the 32 codes in use."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"


class VectorQuantizer(nn.Module):
    def __init__(self, n_codes=32, dim=16, beta=0.25):
        super().__init__()
        self.codebook = nn.Embedding(n_codes, dim)
        nn.init.uniform_(self.codebook.weight, -1 / n_codes, 1 / n_codes)
        self.beta = beta

    def forward(self, z):
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        codes = torch.cdist(flat, self.codebook.weight).argmin(dim=1)
        q = self.codebook(codes).view(b, h, w, d).permute(0, 3, 1, 2)
        vq_loss = F.mse_loss(q, z.detach()) + self.beta * F.mse_loss(z, q.detach())
        q_st = z + (q - z).detach()
        return q_st, vq_loss, codes


class VQVAE(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 16, 1),
        )
        self.quantizer = VectorQuantizer()
        self.decoder = nn.Sequential(
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1),
        )

    def forward(self, x):
        q, vq_loss, codes = self.quantizer(self.encoder(x))
        return torch.sigmoid(self.decoder(q)), vq_loss, codes

    def training_step(self, batch, batch_idx):
        x, _ = batch
        recon, vq_loss, _ = self(x)
        rec = F.mse_loss(recon, x)
        loss = rec + vq_loss
        self.log_dict({"train/recon": rec, "train/vq": vq_loss, "train/loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        recon, vq_loss, codes = self(x)
        self.log("val/recon", F.mse_loss(recon, x), prog_bar=True)
        self.log("val/codes_used", float(codes.unique().numel()))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5150)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    ds = TensorDataset(x, torch.tensor(digits.target))
    train_ds, val_ds = random_split(ds, [1437, 360], generator=torch.Generator().manual_seed(12))
    model = VQVAE()
    trainer = L.Trainer(
        max_epochs=15,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="vqvae_digits"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=360))
    m = trainer.callback_metrics
    pixel_var = float(ds.tensors[0][val_ds.indices].var())
    print(f"SYMPTOM val_recon_mse={float(m['val/recon']):.4f} pixel_var={pixel_var:.3f} "
          f"codes_used={int(m['val/codes_used'])}/32")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
