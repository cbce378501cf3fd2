"""Healthy: a small U-Net (Conv-GroupNorm-ReLU double convs, max-pool down, transposed-conv up, skip
concatenation) segmenting noisy 16x16 grey images into background / bright square / dimmer disc,
trained with per-pixel cross-entropy on logits permuted to (N*H*W, C) plus a soft multi-class dice loss. Adam,
CosineAnnealingLR per epoch. Own metric: val mean IoU over square/disc 0.87."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout5"
N_CLASSES = 3


def make_shapes(n, gen, size=16):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for _ in range(2):
        kind = torch.randint(1, 3, (n,), generator=gen)
        cy, cx = torch.randint(3, size - 3, (2, n), generator=gen)
        r = torch.randint(2, 4, (n,), generator=gen)
        dy, dx = yy[None] - cy[:, None, None], xx[None] - cx[:, None, None]
        square = (dy.abs() <= r[:, None, None]) & (dx.abs() <= r[:, None, None])
        disc = dy ** 2 + dx ** 2 <= (r[:, None, None] + 0.5) ** 2
        shape = torch.where((kind == 1)[:, None, None], square, disc)
        masks[shape] = kind[:, None, None].expand_as(masks)[shape]
    brightness = torch.tensor([0.0, 1.0, 0.55])[masks]
    images = brightness + 0.3 * torch.randn(n, size, size, generator=gen)
    return images.unsqueeze(1), masks


def double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, n_classes=N_CLASSES):
        super().__init__()
        self.enc1, self.enc2 = double_conv(1, 16), double_conv(16, 32)
        self.bottleneck = double_conv(32, 64)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, 2), double_conv(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, 2), double_conv(32, 16)
        self.out = nn.Conv2d(16, n_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottleneck(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)


def soft_dice_loss(logits, masks, eps=1.0):
    probs = logits.softmax(1)
    onehot = F.one_hot(masks, N_CLASSES).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    union = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + eps) / (union + eps)).mean()


class LitUNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = UNet()

    def pixel_ce(self, logits, masks):
        return F.cross_entropy(logits.permute(0, 2, 3, 1).reshape(-1, N_CLASSES), masks.reshape(-1))

    def training_step(self, batch, batch_idx):
        x, m = batch
        logits = self.model(x)
        loss = self.pixel_ce(logits, m) + 0.5 * soft_dice_loss(logits, m)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, m = batch
        logits = self.model(x)
        pred = logits.argmax(1)
        ious = [((pred == c) & (m == c)).sum() / ((pred == c) | (m == c)).sum().clamp(min=1) for c in (1, 2)]
        self.log("val_loss", self.pixel_ce(logits, m))
        self.log("val_miou", torch.stack(ious).mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(53)
    gen = torch.Generator().manual_seed(53)
    x_tr, m_tr = make_shapes(1200, gen)
    x_va, m_va = make_shapes(300, gen)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitUNet(), DataLoader(TensorDataset(x_tr, m_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, m_va), batch_size=150))
    print(f"val_miou={trainer.callback_metrics['val_miou'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
