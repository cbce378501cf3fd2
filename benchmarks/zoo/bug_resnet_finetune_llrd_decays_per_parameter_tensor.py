"""Bug: fine-tuning a hand-written ResNet (torchvision-style `conv1/bn1/layer1..3/fc`) with layer-wise lr decay.
The backbone was pre-trained on a colour-sorting task (which paint colour is the blob?) and is fine-tuned, with a
fresh `fc`, to tell the *shape* (disc, square, triangle, cross) of grey blobs. The optimizer is built with the
popular Kaggle snippet that walks `reversed(list(model.named_parameters()))` and multiplies the lr by 0.9 after
every step - i.e. per parameter *tensor*, not per layer. This ResNet has 47 parameter tensors, so `conv1`, `bn1`
and `layer1` get 0.8-3.4 % of the head's lr (1.6e-5 to 7e-5 with AdamW): the colour-tuned early layers are as
good as frozen, while the shape task needs new low-level features.
Symptom: val acc 0.79 vs 0.92 with one decay step per stage (conv1/bn1 -> 0.7**4, layer1 -> 0.7**3, ..., fc -> 1);
with seed 5: 0.71 vs 0.93."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout14"
SIZE = 24
PAINTS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def blobs(n, seed, task):
    """RGB 24x24 blobs of four shapes. task="colour": label = paint colour (shape random);
    task="shape": label = shape, grey paint of random brightness."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    labels = torch.randint(0, 4, (n,), generator=g)
    cx = 6 + 12 * torch.rand(n, 1, 1, generator=g)
    cy = 6 + 12 * torch.rand(n, 1, 1, generator=g)
    r = 3 + 3 * torch.rand(n, 1, 1, generator=g)
    dx, dy = xx - cx, yy - cy
    shape = labels if task == "shape" else torch.randint(0, 4, (n,), generator=g)
    masks = torch.stack([
        dx ** 2 + dy ** 2 <= r ** 2,
        (dx.abs() <= 0.85 * r) & (dy.abs() <= 0.85 * r),
        (dy <= 0.8 * r) & (dy >= -r) & (dx.abs() <= 0.55 * (dy + r)),
        ((dx.abs() <= 0.3 * r) | (dy.abs() <= 0.3 * r)) & (dx.abs() <= r) & (dy.abs() <= r),
    ], 1)[torch.arange(n), shape].float()
    if task == "colour":
        paint = PAINTS[labels]
    else:
        paint = (0.4 + 0.6 * torch.rand(n, 1, generator=g)).expand(n, 3)
    images = masks[:, None] * paint[:, :, None, None] + 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    return images, labels


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNetSmall(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Classifier(L.LightningModule):
    def __init__(self, net, lr=2e-3, llrd=None):
        super().__init__()
        self.net, self.lr, self.llrd = net, lr, llrd

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        if self.llrd is None:
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        # layer-wise lr decay: the head gets the full lr, every layer below it a bit less
        groups, lr = [], self.lr
        for name, param in reversed(list(self.net.named_parameters())):
            groups.append({"params": [param], "lr": lr, "name": name})
            lr *= self.llrd
        return torch.optim.AdamW(groups, weight_decay=0.01)


def main():
    L.seed_everything(4)
    # "pre-trained checkpoint": the colour-sorting model
    backbone = ResNetSmall()
    pretrain = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, enable_progress_bar=False,
                         enable_model_summary=False, logger=False, enable_checkpointing=False)
    pretrain.fit(Classifier(backbone), DataLoader(TensorDataset(*blobs(2000, 1, "colour")), batch_size=64, shuffle=True))

    backbone.fc = nn.Linear(64, 4)  # new head for the shape task
    model = Classifier(backbone, lr=2e-3, llrd=0.9)
    trainer = L.Trainer(
        max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="resnet_shape_finetune"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(TensorDataset(*blobs(1000, 3, "shape")), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*blobs(400, 4, "shape")), batch_size=200))
    lrs = [group["lr"] for group in trainer.optimizers[0].param_groups]
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f} lr range={min(lrs):.1e}..{max(lrs):.1e}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
