"""Healthy: image inpainting on sklearn digits (8x8, [0, 1]). For each image a random rectangular hole (3-4 pixels a
side) is cut out; the network receives the image with the hole set to 0 *and* the hole mask as a second channel,
and must fill in the hole. Holes are drawn fresh for every training batch (global RNG, in the step) and
from a fixed seeded generator for validation, so val is the same every epoch.

Tricky but correct: the target is the full original image, but the pixels under the hole are zeroed in the input
before the forward pass, so the model never sees what it must predict; the mask channel only says *where* to paint.
The loss is L1 on hole pixels only, normalised per image by the hole area, and the returned image is the usual
composite (known pixels copied from the input, hole pixels from the net), so the trivial copy of known pixels does
not dilute the loss. Small BatchNorm conv net, AdamW + cosine per step.
Measured: val hole L1 0.143 vs 0.363 for filling the hole with the image's mean known pixel."""

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout25"


def random_holes(n, g=None):
    sizes = torch.randint(3, 5, (n, 2), generator=g)
    tops = (torch.rand(n, 2, generator=g) * (9 - sizes)).long()
    rows = torch.arange(8)
    in_y = (rows >= tops[:, :1]) & (rows < tops[:, :1] + sizes[:, :1])
    in_x = (rows >= tops[:, 1:]) & (rows < tops[:, 1:] + sizes[:, 1:])
    return (in_y[:, :, None] & in_x[:, None, :]).float()[:, None]


def conv_bn(c_in, c_out, dilation=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class Inpainter(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(conv_bn(2, 32), conv_bn(32, 32, 2), conv_bn(32, 32, 2), conv_bn(32, 32),
                                 nn.Conv2d(32, 1, 1), nn.Sigmoid())
        self.val_g = torch.Generator().manual_seed(2514)

    def forward(self, image, hole):
        masked = image * (1 - hole)
        filled = self.net(torch.cat([masked, hole], 1))
        return masked + hole * filled

    def hole_l1(self, image, hole):
        err = (self(image, hole) - image).abs() * hole
        return (err.sum((1, 2, 3)) / hole.sum((1, 2, 3))).mean()

    def training_step(self, batch, batch_idx):
        image = batch[0]
        loss = self.hole_l1(image, random_holes(len(image)))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        image = batch[0]
        if batch_idx == 0:
            self.val_g.manual_seed(2514)
        hole = random_holes(len(image), self.val_g)
        self.log("val_loss", self.hole_l1(image, hole))
        known_mean = (image * (1 - hole)).sum((1, 2, 3)) / (1 - hole).sum((1, 2, 3))
        mean_fill = ((known_mean[:, None, None, None] - image).abs() * hole).sum((1, 2, 3)) / hole.sum((1, 2, 3))
        self.log("val_mean_fill_l1", mean_fill.mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2514)
    images = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16.0
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(14))
    train, val = images[perm[:1437]], images[perm[1437:]]
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Inpainter(), DataLoader(TensorDataset(train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=180))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_hole_l1={float(m['val_loss']):.4f} mean_fill_l1={float(m['val_mean_fill_l1']):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
