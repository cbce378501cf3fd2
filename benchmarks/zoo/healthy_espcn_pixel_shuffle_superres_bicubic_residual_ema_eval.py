"""Healthy: 2x single-image super-resolution with an ESPCN-style network (convolutions at low resolution, a final
conv to 4 channels and `PixelShuffle(2)`), predicting the residual over the bicubic up-sampling. HR images are
synthetic 32x32 scenes with sharp edges (overlapping rectangles and discs on a smooth gradient); LR inputs are
their 2x area down-samples plus a little sensor noise. The last conv is zero-initialised, so training starts from
bicubic. L1 loss, Adam with cosine annealing, batches of 16; an exponential moving
average of the weights (`torch.optim.swa_utils.AveragedModel` with `get_ema_multi_avg_fn(0.99)`, frozen, updated
after every optimizer step) is the model that validation scores. Val PSNR 28.3 dB against 26.6 dB for
plain bicubic."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
HR = 32


def make_scenes(n, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(HR).float(), torch.arange(HR).float(), indexing="ij")
    angle = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    hr = 0.3 + 0.2 * ((xx * torch.cos(angle) + yy * torch.sin(angle)) / HR)
    for _ in range(4):
        kind = torch.randint(0, 2, (n, 1, 1), generator=g)
        cy, cx = (4 + (HR - 8) * torch.rand(2, n, 1, 1, generator=g))
        size = 2 + 6 * torch.rand(n, 1, 1, generator=g)
        level = torch.rand(n, 1, 1, generator=g)
        rect = ((yy - cy).abs() <= size) & ((xx - cx).abs() <= 0.7 * size)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= size ** 2
        shape = torch.where(kind == 0, rect, disc)
        hr = torch.where(shape, level, hr)
    hr = hr[:, None]
    lr = F.avg_pool2d(hr, 2) + 0.01 * torch.randn(n, 1, HR // 2, HR // 2, generator=g)
    return lr, hr


def psnr(pred, target):
    mse = F.mse_loss(pred.clamp(0, 1), target, reduction="none").mean(dim=(1, 2, 3))
    return (10 * torch.log10(1 / mse)).mean()


class ESPCN(nn.Module):
    def __init__(self, scale=2, width=48):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width // 2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)
        nn.init.zeros_(self.body[-1].weight)  # start exactly at bicubic
        nn.init.zeros_(self.body[-1].bias)
        self.scale = scale

    def forward(self, lr):
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.shuffle(self.body(lr))


class SuperResolution(L.LightningModule):
    def __init__(self, lr=3e-3, ema_decay=0.99):
        super().__init__()
        self.save_hyperparameters()
        self.net = ESPCN()
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)

    def forward(self, lr_img):
        return self.ema(lr_img)

    def training_step(self, batch, batch_idx):
        lr_img, hr_img = batch
        loss = F.l1_loss(self.net(lr_img), hr_img)
        self.log("train_l1", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.net)

    def validation_step(self, batch, batch_idx):
        lr_img, hr_img = batch
        sr = self(lr_img)
        bicubic = F.interpolate(lr_img, scale_factor=2, mode="bicubic", align_corners=False)
        self.log_dict({"val_l1": F.l1_loss(sr, hr_img), "val_psnr": psnr(sr, hr_img),
                       "val_psnr_bicubic": psnr(bicubic, hr_img)})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs, eta_min=1e-5)]


def main():
    L.seed_everything(37)
    train = TensorDataset(*make_scenes(1500, seed=1))
    val = TensorDataset(*make_scenes(300, seed=2))
    model = SuperResolution()
    trainer = L.Trainer(
        max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="espcn_superres"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=150))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_psnr={m['val_psnr']:.2f} dB bicubic={m['val_psnr_bicubic']:.2f} dB val_l1={m['val_l1']:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
