"""Healthy: semantic segmentation as the torchvision references train FCN: a small dilated ResNet-like backbone
(output stride 4 with a dilated last stage), an `FCNHead` (3x3 conv-BN-ReLU-Dropout(0.1)-1x1 conv) on the last stage
and an auxiliary `FCNHead` on the previous one, both upsampled bilinearly to the input and returned in a dict
`{"out", "aux"}`; loss `CE(out) + 0.5 * CE(aux)` with `ignore_index=255`, the VOC convention: a one-pixel ring
around every object is "void" and counts in neither loss nor metric. Synthetic 24x24 RGB scenes with noisy textured
background, squares (class 1) and discs (class 2) drawn in colours that overlap. SGD momentum 0.9, weight decay 1e-4,
polynomial lr decay (power 0.9) stepped per iteration. Own metric: val mIoU 0.84 (predicting all background: 0.26)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout6"
SIZE, N_CLASSES, VOID = 24, 3, 255


def make_scenes(n, g):
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    images = 0.25 * torch.randn(n, 3, SIZE, SIZE, generator=g) + torch.rand(n, 3, 1, 1, generator=g) * 0.5
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    void = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cls = int(torch.randint(1, 3, (1,), generator=g))
            r = int(torch.randint(3, 6, (1,), generator=g))
            cy, cx = torch.randint(r, SIZE - r, (2,), generator=g).tolist()
            if cls == 1:
                inside = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
                ring = ((yy - cy).abs() <= r + 1) & ((xx - cx).abs() <= r + 1) & ~inside
            else:
                d2 = (yy - cy) ** 2 + (xx - cx) ** 2
                inside, ring = d2 <= r * r, (d2 <= (r + 1) ** 2) & (d2 > r * r)
            colour = torch.rand(3, generator=g) * 0.6 + torch.tensor([0.6, 0.2, 0.2] if cls == 1 else [0.2, 0.6, 0.2])
            images[i][:, inside] = colour[:, None] + 0.15 * torch.randn(3, int(inside.sum()), generator=g)
            masks[i][inside] = cls
            void[i] |= ring
            void[i] &= ~inside
    masks[void] = VOID
    return images, masks


class FCNHead(nn.Sequential):
    def __init__(self, in_ch, n_classes):
        mid = in_ch // 4
        super().__init__(nn.Conv2d(in_ch, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                         nn.Dropout(0.1), nn.Conv2d(mid, n_classes, 1))


def conv_bn(in_ch, out_ch, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(out_ch),
                         nn.ReLU(inplace=True))


class FCN(nn.Module):
    def __init__(self, n_classes=N_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32, 2), conv_bn(32, 32))
        self.layer3 = nn.Sequential(conv_bn(32, 64, 2), conv_bn(64, 64))
        self.layer4 = nn.Sequential(conv_bn(64, 128, dilation=2), conv_bn(128, 128, dilation=2))
        self.classifier = FCNHead(128, n_classes)
        self.aux_classifier = FCNHead(64, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        size = x.shape[-2:]
        aux_in = self.layer3(self.stem(x))
        out = self.classifier(self.layer4(aux_in))
        return {"out": F.interpolate(out, size=size, mode="bilinear", align_corners=False),
                "aux": F.interpolate(self.aux_classifier(aux_in), size=size, mode="bilinear", align_corners=False)}


def mean_iou(pred, target):
    valid = target != VOID
    ious = []
    for c in range(N_CLASSES):
        p, t = (pred == c) & valid, (target == c) & valid
        union = (p | t).sum()
        if union > 0:
            ious.append((p & t).sum().float() / union)
    return torch.stack(ious).mean()


class LitFCN(L.LightningModule):
    def __init__(self, total_steps, lr=0.02):
        super().__init__()
        self.model = FCN()
        self.total_steps, self.lr = total_steps, lr

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        image, mask = batch
        out = self(image)
        loss = (F.cross_entropy(out["out"], mask, ignore_index=VOID)
                + 0.5 * F.cross_entropy(out["aux"], mask, ignore_index=VOID))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        image, mask = batch
        out = self(image)["out"]
        self.log("val_loss", F.cross_entropy(out, mask, ignore_index=VOID))
        self.log("val_miou", mean_iou(out.argmax(1), mask))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (1 - min(step, self.total_steps - 1) / self.total_steps) ** 0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(71)
    g = torch.Generator().manual_seed(71)
    images, masks = make_scenes(600, g)
    tr, va = slice(0, 500), slice(500, None)
    mean, std = images[tr].mean((0, 2, 3), keepdim=True), images[tr].std((0, 2, 3), keepdim=True)
    images = (images - mean) / std
    epochs, batch_size = 8, 16
    total_steps = epochs * (500 // batch_size + 1)
    background = mean_iou(torch.zeros_like(masks[va]), masks[va]).item()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitFCN(total_steps), DataLoader(TensorDataset(images[tr], masks[tr]), batch_size=batch_size,
                                                shuffle=True),
                DataLoader(TensorDataset(images[va], masks[va]), batch_size=100))
    print(f"val_miou={trainer.callback_metrics['val_miou'].item():.3f} all_background_miou={background:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
