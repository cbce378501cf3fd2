"""Healthy: colourisation of synthetically tinted digits. Each sklearn digit (8x8) is rendered in
RGB with its ink in a colour fixed by its class (a 10-colour palette) over a dark grey background; the model sees
only the luma Y = 0.299 R + 0.587 G + 0.114 B and must put the colour back, which requires recognising the digit.

Tricky but correct: the input is computed from the target image, as in every colourisation pipeline; luma does
not determine the colour (all palette colours are scaled to similar luma), so this is not leakage. The net
predicts only two chroma channels (Cb, Cr offsets) and the RGB output is reassembled from the *input* luma and the
predicted chroma with the exact inverse transform, so the luma part of the target is never re-learned. A global
branch (pooled features -> MLP) is broadcast back onto the feature map so that every pixel knows which digit it
belongs to. BatchNorm with batches of 64; an EMA copy of the network (AveragedModel over the `net` submodule,
decay 0.9, use_buffers=True so BN statistics follow) is updated after every optimizer step and used for
validation; the EMA copy is frozen (requires_grad False) and the optimizer holds the live network's parameters.
Loss is L1 in RGB.
Measured: val L1 (EMA) 0.039 vs 0.041 for the live weights and 0.085 for grey output (R = G = B = Y)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout25"
PALETTE = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.7, 0.2], [0.2, 0.4, 1.0], [0.8, 0.6, 0.0], [0.7, 0.2, 0.9],
                        [0.0, 0.7, 0.7], [1.0, 0.4, 0.6], [0.5, 0.6, 0.1], [0.4, 0.5, 0.9], [0.9, 0.5, 0.3]])


def rgb_to_ycbcr(rgb):
    r, g, b = rgb.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y[:, None], torch.stack([0.564 * (b - y), 0.713 * (r - y)], 1)


def ycbcr_to_rgb(y, cbcr):
    cb, cr = cbcr[:, 0:1], cbcr[:, 1:2]
    r = y + 1.403 * cr
    b = y + 1.773 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.cat([r, g, b], 1)


def render(images, labels):
    ink = images[:, None]
    palette = PALETTE / rgb_to_ycbcr(PALETTE[:, :, None, None])[0].flatten()[:, None] * 0.5
    colour = palette[labels][:, :, None, None]
    background = torch.tensor([0.15, 0.15, 0.18])[None, :, None, None]
    rgb = ink * colour + (1 - ink) * background
    return rgb_to_ycbcr(rgb)[0], rgb


def conv_bn(c_in, c_out, dilation=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class ColourNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.local = nn.Sequential(conv_bn(1, 32), conv_bn(32, 32, 2), conv_bn(32, 32, 4))
        self.glob = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
        self.head = nn.Sequential(conv_bn(64, 32), nn.Conv2d(32, 2, 1))

    def forward(self, y):
        h = self.local(y)
        g = self.glob(h.mean((2, 3)))[:, :, None, None].expand_as(h)
        return ycbcr_to_rgb(y, self.head(torch.cat([h, g], 1)))


class Colouriser(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = ColourNet()
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
        self.ema.requires_grad_(False)

    def forward(self, y):
        return self.net(y)

    def training_step(self, batch, batch_idx):
        y, rgb = batch
        loss = F.l1_loss(self(y), rgb)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.net)

    def validation_step(self, batch, batch_idx):
        y, rgb = batch
        self.log("val_loss", F.l1_loss(self.ema.module(y), rgb))
        self.log("val_grey_l1", F.l1_loss(y.expand_as(rgb), rgb))

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2512)
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(data.target)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(12))
    train, val = render(images[perm[:1400]], labels[perm[:1400]]), render(images[perm[1400:]], labels[perm[1400:]])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Colouriser(), DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_l1={float(m['val_loss']):.4f} grey_l1={float(m['val_grey_l1']):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
