"""Healthy: residual (DnCNN-style) denoiser for seeded synthetic 16x16 stripe/checker textures with Gaussian noise
of random strength (sigma 0.1-0.4): the network predicts the noise and the clean estimate is input minus noise.
BatchNorm in the hidden layers, Adam, and Lightning's StochasticWeightAveraging over the last epochs (the averaged
weights get their BatchNorm statistics recomputed by the callback). Final val PSNR 19.6 dB vs 12.5 dB for the
noisy input."""

import lightning as L
import math
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
S = 16


def make_textures(n, g):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    th = (math.pi * torch.rand(n, generator=g))[:, None, None]
    f = (0.5 + torch.rand(n, generator=g))[:, None, None]
    u = xx * torch.cos(th) + yy * torch.sin(th)
    v = -xx * torch.sin(th) + yy * torch.cos(th)
    checker = (torch.rand(n, generator=g) < 0.5)[:, None, None]
    clean = torch.where(checker, torch.sin(f * u) * torch.sin(f * v), torch.sin(f * u))
    clean = 0.5 + 0.4 * clean
    sigma = (0.1 + 0.3 * torch.rand(n, generator=g))[:, None, None]
    noisy = clean + sigma * torch.randn(n, S, S, generator=g)
    return noisy.unsqueeze(1), clean.unsqueeze(1)


def psnr(est, clean):
    mse = ((est - clean) ** 2).mean((1, 2, 3))
    return (10 * torch.log10(1.0 / mse)).mean()


class ResidualDenoiser(L.LightningModule):
    def __init__(self, lr=2e-3, width=48, depth=5):
        super().__init__()
        self.save_hyperparameters()
        layers = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, noisy):
        return noisy - self.net(noisy)

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        loss = F.mse_loss(self.net(noisy), noisy - clean)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        noisy, clean = batch
        est = self(noisy)
        self.log("val_loss", F.mse_loss(est, clean))
        self.log("val_psnr", psnr(est, clean), prog_bar=True)
        self.log("val_psnr_noisy", psnr(noisy, clean))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(77)
    g = torch.Generator().manual_seed(77)
    noisy, clean = make_textures(1600, g)
    train, val = TensorDataset(noisy[:1400], clean[:1400]), TensorDataset(noisy[1400:], clean[1400:])
    callbacks = lightning_sanity.default_callbacks() + [StochasticWeightAveraging(swa_lrs=5e-4, swa_epoch_start=0.6)]
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False, callbacks=callbacks,
                        enable_model_summary=False)
    trainer.fit(ResidualDenoiser(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_psnr={m['val_psnr'].item():.2f} noisy_psnr={m['val_psnr_noisy'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
