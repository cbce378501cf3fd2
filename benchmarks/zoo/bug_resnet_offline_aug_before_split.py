"""Bug: offline augmentation BEFORE the train/validation split. A small ResNet (two residual BasicBlocks with
BatchNorm, written here) on sklearn's 8x8 digits; every non-test image gets three randomly shifted copies (-1..1 pixel
per axis, a shift of 0 included), and the enlarged set is then cut by `random_split` into train and validation, so
copies of one digit land on both sides (often bit-identical: the original and an unshifted copy). Validation measures
memory: val acc 0.996 / val loss 0.097 while the untouched test set gives 0.980 / 0.130; split before augmenting
(healthy_resnet_offline_aug_after_split) val and test agree: 0.980 / 0.136 vs 0.973 / 0.147."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout2"


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class TinyResNet(L.LightningModule):
    def __init__(self, lr=2e-3, epochs=8):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlock(16, 16)
        self.layer2 = BasicBlock(16, 32, stride=2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

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
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def random_shifts(images, copies, gen):
    """`copies` shifted versions of each image: a shift of -1, 0 or 1 pixel per axis, zero padded."""
    padded = F.pad(images, (1, 1, 1, 1))
    every_shift = torch.stack([padded[..., dy:dy + 8, dx:dx + 8] for dy in range(3) for dx in range(3)])
    rows = torch.arange(len(images))
    return torch.cat([every_shift[torch.randint(0, 9, (len(images),), generator=gen), rows] for _ in range(copies)])


def main():
    L.seed_everything(0)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.45
    y = torch.tensor(d.target)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=gen)
    test_idx, rest = perm[:300], perm[300:900]
    aug_x = torch.cat([x[rest], random_shifts(x[rest], 3, gen)])
    aug_y = y[rest].repeat(4)
    # BUG: the split comes after the augmentation, so copies of one image land on both sides
    train_set, val_set = random_split(TensorDataset(aug_x, aug_y), [0.8, 0.2], generator=gen)
    model = TinyResNet()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=20,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_set, batch_size=64, shuffle=True),
                DataLoader(val_set, batch_size=128))
    model.eval()
    with torch.no_grad():
        test_logits = model(x[test_idx])
    test_acc = (test_logits.argmax(1) == y[test_idx]).float().mean().item()
    test_loss = F.cross_entropy(test_logits, y[test_idx]).item()
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} test_acc={test_acc:.3f}")
    print(f"val_loss={m['val_loss'].item():.3f} test_loss={test_loss:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
