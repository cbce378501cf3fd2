"""Bug: a small VGG-style CNN (hand-written, torchvision `vgg`-like `features`/`classifier` structure) on 300
scanned digits (sklearn digits upsampled to 16x16) whose labels came from a crowd-sourcing round, so about a
quarter of them are wrong. Because 300 images make very short epochs, the author wraps the dataset in an
mmcv-style `RepeatDataset(times=8)` (random 1-px shifts and pixel noise applied in `__getitem__`) and only then
calls `random_split(repeated, [0.8, 0.2])`. Every validation item is a jittered copy of an image that also sits in
the training part (about six times), so as the network memorises the crowd's mistakes the validation score rises
with it. Symptom: reported val acc 0.83 vs 0.48 when the 300 images are split first and only the training part is
repeated; on the 1,497 digits that were never used the buggy model scores 0.50 (0.54 with the fix), so the
reported number is pure memorisation."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout14"


def load_crowd_digits():
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=16, mode="bilinear", align_corners=False)
    x = (x - 0.3) / 0.4
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(5)
    wrong = torch.rand(len(y), generator=g) < 0.3  # crowd workers picked a random digit for ~30 % of scans
    y = torch.where(wrong, torch.randint(0, 10, (len(y),), generator=g), y)
    return x, y


class ScanDataset(Dataset):
    def __init__(self, images, labels, augment=False):
        self.images, self.labels, self.augment = images, labels, augment

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        img = self.images[idx]
        if self.augment:
            dy, dx = torch.randint(-1, 2, (2,)).tolist()
            img = torch.roll(img, shifts=(dy, dx), dims=(-2, -1)) + 0.1 * torch.randn_like(img)
        return img, self.labels[idx]


class RepeatDataset(Dataset):
    """Repeat a small dataset `times` times per epoch (mmcv-style)."""

    def __init__(self, dataset, times):
        self.dataset, self.times = dataset, times

    def __len__(self):
        return self.times * len(self.dataset)

    def __getitem__(self, idx):
        return self.dataset[idx % len(self.dataset)]


def make_layers(cfg, in_channels=1):
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(in_channels, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGGSmall(L.LightningModule):
    def __init__(self, num_classes=10, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.features = make_layers([32, 32, "M", 64, 64, "M", 128, 128, "M"])
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128 * 2 * 2, 128), nn.ReLU(inplace=True),
                                        nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))

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
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(3)
    x, y = load_crowd_digits()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    labelled, unused = perm[:300], perm[300:]

    full = RepeatDataset(ScanDataset(x[labelled], y[labelled], augment=True), times=8)
    train_set, val_set = random_split(full, [0.8, 0.2], generator=torch.Generator().manual_seed(0))

    model = VGGSmall()
    trainer = L.Trainer(
        max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="crowd_digits_vgg"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(train_set, batch_size=64, shuffle=True), DataLoader(val_set, batch_size=128))
    print(f"SYMPTOM reported val_acc={trainer.callback_metrics['val_acc']:.3f}")

    model.eval()
    with torch.no_grad():
        acc = (model(x[unused]).argmax(1) == y[unused]).float().mean()
    print(f"SYMPTOM never-used scans acc={acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
