"""Healthy: a DnCNN-style denoiser (conv-BN-ReLU stack that predicts the noise, the clean image is input minus the
prediction) on synthetic 16x16 textures (sums of random sinusoid gratings) corrupted with Gaussian noise of a random
level per image. bf16-mixed autocast on CPU, Adam with a StepLR decay, gradient clipping by norm. Validation PSNR
rises from about 17.6 dB (the noisy input) to about 26.4 dB."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"


def gratings(n, seed, size=16):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    img = torch.zeros(n, size, size)
    for _ in range(3):
        a = math.pi * torch.rand(n, 1, 1, generator=g)
        f = 0.2 + 0.6 * torch.rand(n, 1, 1, generator=g)
        ph = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
        img += torch.rand(n, 1, 1, generator=g) * torch.sin(f * (xx * torch.cos(a) + yy * torch.sin(a)) + ph)
    clean = (img - img.amin((1, 2), keepdim=True)) / (img.amax((1, 2), keepdim=True) - img.amin((1, 2), keepdim=True))
    sigma = 0.05 + 0.15 * torch.rand(n, 1, 1, generator=g)
    noisy = clean + sigma * torch.randn(clean.shape, generator=g)
    return noisy.unsqueeze(1), clean.unsqueeze(1)


class DnCNN(L.LightningModule):
    def __init__(self, depth=6, width=32, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        layers = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, noisy):
        return noisy - self.body(noisy)

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        loss = F.mse_loss(self(noisy), clean)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        noisy, clean = batch
        mse = F.mse_loss(self(noisy).float(), clean)
        self.log("val_loss", mse)
        self.log("val_psnr", -10 * torch.log10(mse))
        self.log("input_psnr", -10 * torch.log10(F.mse_loss(noisy, clean)))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.3)]


def main():
    L.seed_everything(2718)
    ntr, ctr = gratings(1500, seed=5)
    nva, cva = gratings(300, seed=6)
    train_dl = DataLoader(TensorDataset(ntr, ctr), batch_size=32, shuffle=True)
    val_dl = DataLoader(TensorDataset(nva, cva), batch_size=150)
    trainer = L.Trainer(max_epochs=10, precision="bf16-mixed", gradient_clip_val=0.5,
                        callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(DnCNN(), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_psnr={m['val_psnr']:.2f} input_psnr={m['input_psnr']:.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
