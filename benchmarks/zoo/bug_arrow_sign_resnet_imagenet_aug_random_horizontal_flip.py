"""Bug: a small hand-written ResNet (torchvision BasicBlock layout) classifies road-marking arrows (left, right,
up, down) in 24x24 grey images. The augmentation pipeline is the one the author uses for every image model -
random 2-px shift, brightness jitter and `RandomHorizontalFlip(p=0.5)` - written by hand because torchvision is
not available. For this task the flip changes the class: a flipped "left" arrow is a "right" arrow that keeps the
label "left", so half of the left/right training images are identical in kind to the other class with the
opposite label. Up/down are unaffected; left vs right becomes a coin toss.
Symptom: val acc 0.72 (left/right acc 0.42) vs 0.95 (left/right 0.92) without the horizontal flip."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout14"
SIZE = 24
CLASSES = ["left", "right", "up", "down"]
ANGLES = [math.pi, 0.0, -math.pi / 2, math.pi / 2]  # image coordinates: +x right, +y down


def draw_arrows(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    angle = torch.tensor(ANGLES)[labels] + (torch.rand(n, generator=g) - 0.5) * 0.5
    dx, dy = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    cx = (SIZE / 2 + (torch.rand(n, generator=g) - 0.5) * 6)[:, None, None]
    cy = (SIZE / 2 + (torch.rand(n, generator=g) - 0.5) * 6)[:, None, None]
    half = (4 + 2 * torch.rand(n, generator=g))[:, None, None]
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    along = (xx - cx) * dx + (yy - cy) * dy
    across = -(xx - cx) * dy + (yy - cy) * dx
    shaft = (along.abs() <= half) & (across.abs() <= 0.9)
    behind_tip = half - along
    head = (behind_tip >= 0) & (behind_tip <= 4.5) & (across.abs() <= 0.8 * behind_tip + 0.5)
    ink = (shaft | head).float()
    contrast = 0.7 + 0.6 * torch.rand(n, 1, 1, generator=g)
    images = ink * contrast + 0.25 * torch.randn(n, SIZE, SIZE, generator=g)
    return images[:, None], labels


class Augmented(Dataset):
    """The author's standard image augmentation (hand-written torchvision.transforms equivalent)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        img = self.images[idx]
        if torch.rand(()) < 0.5:  # RandomHorizontalFlip
            img = img.flip(-1)
        dy, dx = torch.randint(-2, 3, (2,)).tolist()  # RandomAffine(translate=...)
        img = torch.roll(img, shifts=(dy, dx), dims=(-2, -1))
        img = img * (0.8 + 0.4 * torch.rand(()))  # ColorJitter(brightness=0.2)
        return img, self.labels[idx]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ArrowResNet(L.LightningModule):
    def __init__(self, num_classes=4, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(16, 16)
        self.layer2 = BasicBlock(16, 32, stride=2)
        self.layer3 = BasicBlock(32, 64, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))

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
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.3)]


def main():
    L.seed_everything(21)
    train_x, train_y = draw_arrows(1600, seed=1)
    val_x, val_y = draw_arrows(400, seed=2)
    model = ArrowResNet()
    trainer = L.Trainer(
        max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="arrow_resnet"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(Augmented(train_x, train_y), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val_x, val_y), batch_size=200))
    model.eval()
    with torch.no_grad():
        pred = model(val_x).argmax(1)
    lr_rows = val_y <= 1
    print(f"SYMPTOM val_acc={(pred == val_y).float().mean():.3f} "
          f"left/right acc={(pred[lr_rows] == val_y[lr_rows]).float().mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
