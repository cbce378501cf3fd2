"""Healthy: a compact CNN on sklearn digits upsampled to 16x16 trained with CutMix written in the training step (a
random box from a shuffled partner image is pasted in, and the one-hot targets are mixed by the pasted area, the
loss is cross-entropy against the soft targets), micro-batches of 8 with accumulate_grad_batches=8, bf16-mixed
autocast on CPU, gradient clipping, SGD with Nesterov momentum and OneCycleLR over the optimizer steps. Validation
uses clean images and hard labels. Final val acc about 0.99."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"


def cutmix(x, y, num_classes, alpha=1.0):
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    h, w = x.shape[-2:]
    ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy, cx = torch.randint(0, h, (1,)).item(), torch.randint(0, w, (1,)).item()
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    area = (y1 - y0) * (x1 - x0) / (h * w)
    t = F.one_hot(y, num_classes).float()
    return x, (1 - area) * t + area * t[perm]


class CutMixCNN(L.LightningModule):
    def __init__(self, lr=0.1, total_steps=100):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 96, 3, padding=1, bias=False), nn.BatchNorm2d(96), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        xm, soft = cutmix(x, y, 10)
        loss = F.cross_entropy(self(xm), soft)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits.float(), y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=self.hparams.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(8080)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (F.interpolate(x, size=16, mode="bilinear", align_corners=False) - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(12))
    tr, va = perm[:1472], perm[1472:]
    train_dl = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=8, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[va], y[va]), batch_size=325)
    epochs, accum = 10, 8
    trainer = L.Trainer(max_epochs=epochs, accumulate_grad_batches=accum, precision="bf16-mixed",
                        gradient_clip_val=2.0, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(CutMixCNN(total_steps=epochs * len(train_dl) // accum), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
