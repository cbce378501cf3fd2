"""Healthy: a convolutional autoencoder (strided Conv-ReLU encoder, 16-d bottleneck, ConvTranspose decoder, no
normalization layers, linear output) compressing 16-bit microscopy tiles (synthetic 16x16, a few bright Gaussian
spots on a noisy background). The uint16 pixels are divided by 65535 and standardized with the training mean/std,
and the MSE reconstruction target is that standardized tile. Adam lr 1e-3, OneCycleLR per step,
`limit_train_batches=0.8`. Own metric: val relative MSE (MSE / var of the tiles) 0.125 (the pixel noise is incompressible)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout5"


def make_tiles(n, gen, size=16):
    counts = torch.poisson(torch.full((n,), 3.0), generator=gen).clamp(max=6)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    img = 1200 + 400 * torch.randn(n, size, size, generator=gen)
    for k in range(6):
        present = (counts > k).float()[:, None, None]
        cy, cx = 2 + 12 * torch.rand(2, n, generator=gen)
        spot = torch.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) / 3.0)
        img = img + present * 18000 * spot
    return img.clamp(0, 65535).round().unsqueeze(1)  # what a uint16 TIFF holds


def preprocess(tiles, stats=None):
    x = tiles / 65535.0
    mu, sd = stats if stats is not None else (x.mean(), x.std())
    return (x - mu) / sd, (mu, sd)


class ConvAutoencoder(nn.Module):
    def __init__(self, code=16):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                     nn.Flatten(), nn.Linear(32 * 16, code))
        self.decoder_fc = nn.Sequential(nn.Linear(code, 32 * 16), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 1, 4, 2, 1))

    def forward(self, x):
        h = self.decoder_fc(self.encoder(x)).view(-1, 32, 4, 4)
        return self.decoder(h)


class LitAE(L.LightningModule):
    def __init__(self, total_steps):
        super().__init__()
        self.model = ConvAutoencoder()
        self.total_steps = total_steps

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self.model(x), x)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        mse = F.mse_loss(self.model(x), x)
        self.log("val_loss", mse)
        self.log("val_rel_mse", mse / x.var())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(67)
    gen = torch.Generator().manual_seed(67)
    tiles_tr, tiles_va = make_tiles(2000, gen), make_tiles(400, gen)
    x_tr, stats = preprocess(tiles_tr)
    x_va, _ = preprocess(tiles_va, stats)
    epochs, bs, limit = 8, 64, 0.8
    steps = epochs * int(limit * ((len(x_tr) + bs - 1) // bs))
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=limit, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitAE(steps), DataLoader(TensorDataset(x_tr), batch_size=bs, shuffle=True),
                DataLoader(TensorDataset(x_va), batch_size=400))
    print(f"val_rel_mse={trainer.callback_metrics['val_rel_mse'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
