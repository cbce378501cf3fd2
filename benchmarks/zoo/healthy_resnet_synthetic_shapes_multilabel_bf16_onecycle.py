"""Healthy: multi-label recognition on synthetic 16x16 images, each holding 0 to 3 of four shape kinds (filled square,
hollow square, plus, diagonal bar) at random places on a noisy background; the targets are 4-d multi-hot vectors.
A small pre-activation ResNet with BatchNorm, BCE-with-logits, SGD + Nesterov under OneCycleLR stepped per batch,
bf16-mixed autocast on CPU, gradient clipping at 1.0. Final val micro-F1 0.995, exact-match 0.98."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
SIZE = 16


def stamp(kind):
    s = torch.zeros(4, 4)
    if kind == 0:
        s[:] = 1
    elif kind == 1:
        s[0, :] = s[-1, :] = s[:, 0] = s[:, -1] = 1
    elif kind == 2:
        s[1:3, :] = 1
        s[:, 1:3] = 1
    else:
        s = torch.eye(4)
    return s


STAMPS = [stamp(k) for k in range(4)]


def make_images(n, generator):
    x = 0.15 * torch.randn(n, 1, SIZE, SIZE, generator=generator)
    y = torch.zeros(n, 4)
    for i in range(n):
        present = torch.rand(4, generator=generator) < 0.4
        for k in torch.nonzero(present).flatten().tolist():
            r, c = torch.randint(0, SIZE - 4, (2,), generator=generator).tolist()
            x[i, 0, r:r + 4, c:c + 4] += STAMPS[k]
            y[i, k] = 1
    return x, y


class PreActBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.skip(out) if not isinstance(self.skip, nn.Identity) else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class ShapesResNet(L.LightningModule):
    def __init__(self, max_lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.blocks = nn.Sequential(PreActBlock(32, 32, 1), PreActBlock(32, 64, 2), PreActBlock(64, 64, 1))
        self.norm = nn.BatchNorm2d(64)
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        h = F.relu(self.norm(self.blocks(self.stem(x))))
        return self.head(h.amax(dim=(2, 3)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x).float(), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x).float()
        pred = (logits > 0).float()
        tp, fp, fn = (pred * y).sum(), (pred * (1 - y)).sum(), ((1 - pred) * y).sum()
        self.log("val/loss", F.binary_cross_entropy_with_logits(logits, y), prog_bar=True)
        self.log("val/micro_f1", 2 * tp / (2 * tp + fp + fn), prog_bar=True)
        self.log("val/exact_match", (pred == y).all(dim=1).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.max_lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(321)
    g = torch.Generator().manual_seed(5)
    train = TensorDataset(*make_images(2400, g))
    val = TensorDataset(*make_images(600, g))
    model = ShapesResNet()
    trainer = L.Trainer(
        max_epochs=8,
        precision="bf16-mixed",
        gradient_clip_val=1.0,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="shapes_multilabel"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_micro_f1={float(m['val/micro_f1']):.3f} val_exact_match={float(m['val/exact_match']):.3f} "
          f"val_loss={float(m['val/loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
