"""Healthy: an implicit neural representation (SIREN: sine activations with w0 = 30 and the paper's uniform
initialisation) fitting a 64x64 grey image - a 4x4 mosaic of sklearn digits, bilinearly upsampled 2x - from the
(x, y) coordinates of a random 80 % of its pixels, validated on the other 20 % (interpolation). Adam at 1e-4, mini-
batches of 512 coordinates drawn with replacement, a small lr decay at the end. The sine layers look saturated and
the first layer's weights are large by design. Final val PSNR about 32 dB (the mean-grey predictor gives about
10 dB)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"


class SineLayer(nn.Module):
    def __init__(self, cin, cout, w0=30.0, first=False):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(cin, cout)
        bound = 1 / cin if first else math.sqrt(6 / cin) / w0
        nn.init.uniform_(self.linear.weight, -bound, bound)

    def forward(self, x):
        return torch.sin(self.w0 * self.linear(x))


class Siren(L.LightningModule):
    def __init__(self, hidden=128, lr=1e-4):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(SineLayer(2, hidden, first=True), SineLayer(hidden, hidden),
                                 SineLayer(hidden, hidden), nn.Linear(hidden, 1))
        bound = math.sqrt(6 / hidden) / 30.0
        nn.init.uniform_(self.net[-1].weight, -bound, bound)

    def forward(self, coords):
        return self.net(coords)

    def training_step(self, batch, batch_idx):
        c, v = batch
        loss = F.mse_loss(self(c), v)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        c, v = batch
        mse = F.mse_loss(self(c), v)
        self.log("val_mse", mse)
        self.log("val_psnr", 10 * torch.log10(4.0 / mse))         # values in [-1, 1]: peak-to-peak 2

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[8], gamma=0.3)]


def main():
    L.seed_everything(65)
    digits = torch.tensor(load_digits().images[:16], dtype=torch.float32) / 16.0
    mosaic = digits.view(4, 4, 8, 8).permute(0, 2, 1, 3).reshape(32, 32)
    img = F.interpolate(mosaic[None, None], scale_factor=2, mode="bilinear", align_corners=False)[0, 0]
    img = img * 2 - 1
    H = img.shape[0]
    lin = torch.linspace(-1, 1, H)
    coords = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).view(-1, 2)
    values = img.reshape(-1, 1)
    perm = torch.randperm(H * H, generator=torch.Generator().manual_seed(0))
    tr, va = perm[: int(0.8 * H * H)], perm[int(0.8 * H * H):]
    train_ds = TensorDataset(coords[tr], values[tr])
    sampler = RandomSampler(train_ds, replacement=True, num_samples=512 * 60)
    model = Siren()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="siren"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=512, sampler=sampler),
                DataLoader(TensorDataset(coords[va], values[va]), batch_size=1024))
    model.eval()
    with torch.no_grad():
        mse = F.mse_loss(model(coords[va]), values[va])
    base = F.mse_loss(values[tr].mean().expand_as(values[va]), values[va])
    print(f"SYMPTOM val_psnr={10 * torch.log10(4 / mse):.2f} mean_grey_psnr={10 * torch.log10(4 / base):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
