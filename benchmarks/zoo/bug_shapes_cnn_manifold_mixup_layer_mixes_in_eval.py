"""Bug: a CNN classifying synthetic 16x16 shape images (square / disc / cross / triangle outline, random size,
position, intensity and noise) with Manifold Mixup: a `ManifoldMixup` module placed after the second conv stage
mixes each sample's feature map with that of another sample of the batch and records the permutation and lambda so
the loss can mix the targets. The module never looks at `self.training` (the user thought "mixup is only in the
loss"), so in validation every image's features are blended with another image's and the prediction depends on
which images share the batch.
Symptom: val acc 0.43 vs 0.98 when the module returns its input in eval mode."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout16"


def draw_shapes(n, seed, size=16):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    imgs, labels = torch.zeros(n, 1, size, size), torch.randint(0, 4, (n,), generator=g)
    for i in range(n):
        r = 2.5 + 3 * torch.rand(1, generator=g).item()
        cy, cx = (r + (size - 2 * r) * torch.rand(2, generator=g)).tolist()
        dy, dx = yy - cy, xx - cx
        k = labels[i].item()
        if k == 0:
            m = (dy.abs() <= r) & (dx.abs() <= r)
        elif k == 1:
            m = dy ** 2 + dx ** 2 <= r ** 2
        elif k == 2:
            m = ((dy.abs() <= r / 3) & (dx.abs() <= r)) | ((dx.abs() <= r / 3) & (dy.abs() <= r))
        else:
            m = (dy >= -r) & (dy <= r) & (dx.abs() <= (dy + r) / 2)
        imgs[i, 0] = m.float() * (0.6 + 0.4 * torch.rand(1, generator=g))
    imgs += 0.15 * torch.randn(imgs.shape, generator=g)
    return imgs, labels


class ManifoldMixup(nn.Module):
    def __init__(self, alpha=1.0):
        super().__init__()
        self.beta = torch.distributions.Beta(alpha, alpha)
        self.perm, self.lam = None, 1.0

    def forward(self, h):
        self.lam = float(self.beta.sample())
        self.perm = torch.randperm(h.shape[0], device=h.device)
        return self.lam * h + (1 - self.lam) * h[self.perm]


class ShapeCNN(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.stage1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.mix = ManifoldMixup(alpha=1.0)
        self.head = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(64, 4))

    def forward(self, x):
        return self.head(self.mix(self.stage2(self.stage1(x))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        lam, perm = self.mix.lam, self.mix.perm
        loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(404)
    xtr, ytr = draw_shapes(1600, seed=1)
    xva, yva = draw_shapes(400, seed=2)
    train_dl = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(xva, yva), batch_size=100)
    trainer = L.Trainer(max_epochs=10, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(ShapeCNN(), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
