"""Healthy: blind-range Gaussian denoising of sklearn digits (8x8 upsampled to 16x16, [0, 1]) with an FFDNet-style
network. Every image gets its own noise level sigma ~ U(0.05, 0.4); the network receives the noisy image and a
constant "noise map" channel filled with sigma (as FFDNet does: the level is known or estimated at test time) and
predicts the noise residual; the clean estimate is noisy - residual. Loss: MSE between clean estimate and clean
image. Training noise is redrawn every step; validation noise comes from a generator re-seeded at the start of
each validation epoch, so val loss is comparable across epochs.

Tricky but correct: the noise-level channel is a property of the corruption, not of the clean image, so it is not
target leakage; the residual formulation makes the identity mapping easy, not a shortcut (the loss compares to
the clean image). BatchNorm in the middle layers, trained with `precision="bf16-mixed"` autocast on CPU; the
loss is computed in float32. Measured: val PSNR 21.7 dB vs 12.1 dB for the noisy input."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout25"


def corrupt(clean, g=None):
    sigma = 0.05 + 0.35 * torch.rand(len(clean), 1, 1, 1, generator=g)
    noisy = clean + sigma * torch.randn(clean.shape, generator=g)
    return noisy, sigma.expand_as(clean)


class FFDNetLite(L.LightningModule):
    def __init__(self, width=32, depth=5, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        layers = [nn.Conv2d(2, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.val_g = torch.Generator()

    def forward(self, noisy, noise_map):
        return noisy - self.net(torch.cat([noisy, noise_map], 1))

    def training_step(self, batch, batch_idx):
        clean = batch[0]
        noisy, noise_map = corrupt(clean)
        loss = F.mse_loss(self(noisy, noise_map).float(), clean)
        self.log("train_loss", loss)
        return loss

    def on_validation_epoch_start(self):
        self.val_g.manual_seed(2516)

    def validation_step(self, batch, batch_idx):
        clean = batch[0]
        noisy, noise_map = corrupt(clean, self.val_g)
        mse = F.mse_loss(self(noisy, noise_map).float(), clean)
        self.log("val_loss", mse)
        self.log("val_psnr", -10 * torch.log10(mse))
        self.log("val_noisy_psnr", -10 * torch.log10(F.mse_loss(noisy, clean)))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        warmup = 30
        total = self.trainer.estimated_stepping_batches

        def schedule(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2516)
    images = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16.0
    images = F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False).clamp(0, 1)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(16))
    train, val = images[perm[:1437]], images[perm[1437:]]
    trainer = L.Trainer(max_epochs=6, precision="bf16-mixed", accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FFDNetLite(), DataLoader(TensorDataset(train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=180))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_psnr={float(m['val_psnr']):.2f}dB noisy_psnr={float(m['val_noisy_psnr']):.2f}dB")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
