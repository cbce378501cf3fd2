"""Bug: a BatchNorm CNN on the scikit-learn digits, zero-padded to 10x10. Training takes one random 8x8 crop per
image (translation augmentation) and calls the backbone directly; `forward`, used by validation and prediction, does
five-crop test-time augmentation: the four corner crops and the centre crop are stacked into one big batch, run
through the backbone, and the logits are averaged per image. SGD with Nesterov momentum and a OneCycle schedule.

The crops are stacked crop-major (`torch.cat([crop_0, ..., crop_4])`, shape (5B, ...)), but the logits are
regrouped with `.view(B, 5, -1).mean(1)`, which assumes image-major order. Row b of the result is the mean over
five consecutive rows of the big batch, which belong to images 5b..5b+4 (mod B) rather than to image b, so each
prediction is made from other images of the batch. Training never goes through `forward`, so the training loss
falls as usual (0.027); only validation is off. Symptom: val accuracy 0.121 and val loss 3.97 (above ln 10),
vs 0.992 / 0.039 with `.view(5, B, -1).mean(0)`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing", "val-divergence"}
SPLIT = "heldout21"
OFFSETS = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]


class FiveCropCNN(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        b = x.shape[0]
        crops = torch.cat([x[:, :, i:i + 8, j:j + 8] for i, j in OFFSETS])
        return self.backbone(crops).view(b, len(OFFSETS), -1).mean(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        i, j = torch.randint(0, 3, (2,)).tolist()
        loss = F.cross_entropy(self.backbone(x[:, :, i:i + 8, j:j + 8]), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2106)
    digits = load_digits()
    x = F.pad(torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0, (1, 1, 1, 1))
    x = (x - 0.25) / 0.4
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    model = FiveCropCNN()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"train_loss={float(m['train_loss_epoch']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
