"""Bug: x2 super-resolution of handwritten digits with an ESPCN-style net. High-resolution targets are the 8x8
sklearn digits scaled to [0, 1]; inputs are their 2x2 average-pooled 4x4 versions. The net predicts a residual over
the bilinear upsampling of the input through a PixelShuffle(2) head; L1 loss, Adam with a cosine schedule meant to
decay over the whole run.

The scheduler is built as `CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)` (copied from an epoch-based
recipe) but registered with `"interval": "step"`. T_max is therefore 12 optimizer steps: the learning rate falls to
zero after 12 steps, climbs back over the next 12, and repeats this 22 times over the 540 steps of the run instead
of annealing once. Training still converges to something sensible because half of each cycle has a usable
learning rate, so the damage is small and easy to miss. Symptom: val L1 0.1017 vs 0.1002 with
T_max = `self.trainer.estimated_stepping_batches` (bilinear upsampling alone: 0.1800)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout25"


def make_pairs(images):
    hr = images[:, None]
    return F.avg_pool2d(hr, 2), hr


class ESPCN(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.Tanh(), nn.Conv2d(32, 32, 3, padding=1), nn.Tanh(),
                                  nn.Conv2d(32, 4, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, lr_img):
        base = F.interpolate(lr_img, scale_factor=2, mode="bilinear", align_corners=False)
        return base + self.body(lr_img)

    def training_step(self, batch, batch_idx):
        lr_img, hr = batch
        loss = F.l1_loss(self(lr_img), hr)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        lr_img, hr = batch
        self.log("val_loss", F.l1_loss(self(lr_img), hr))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2506)
    images = torch.tensor(load_digits().images, dtype=torch.float32) / 16.0
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(6))
    train, val = make_pairs(images[perm[:1437]]), make_pairs(images[perm[1437:]])
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ESPCN(), DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=180))
    bilinear_l1 = F.l1_loss(F.interpolate(val[0], scale_factor=2, mode="bilinear", align_corners=False), val[1])
    print(f"SYMPTOM val_l1={float(trainer.callback_metrics['val_loss']):.4f} bilinear_l1={float(bilinear_l1):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
