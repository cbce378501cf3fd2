"""Bug: a BatchNorm CNN on the 8x8 scikit-learn digits with random-translation augmentation (pad 1, random 8x8
crop, done on the batch in `on_after_batch_transfer`), AdamW and per-epoch cosine decay. The DataModule keeps the
training images as float arrays, while the validation images are held as a uint8 HWC cache (as they would be when
read from PNG files) and go through a small `to_chw_tensor` helper.

The helper converts HWC to CHW with `np.transpose(img, (2, 1, 0))` instead of `(2, 0, 1)`: for a one-channel image
the shape is the same (1, 8, 8), so nothing complains, but every validation digit is transposed (mirrored along the
diagonal). The model learns the upright digits fine (the training loss falls normally), and validation is scored on
images it never sees in that orientation. Symptom: val accuracy 0.136 and val loss 6.34 (far above ln 10 while the
train loss falls to 0.079) vs 0.992 / 0.047 with `(2, 0, 1)`."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout21"


def to_chw_tensor(img_hwc):
    return torch.from_numpy(np.transpose(img_hwc, (2, 1, 0)).astype(np.float32) / 255.0)


class DigitsDataModule(L.LightningDataModule):
    def __init__(self, batch_size=64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        digits = load_digits()
        perm = np.random.default_rng(0).permutation(len(digits.target))
        tr, va = perm[:1400], perm[1400:]
        self.train_x = torch.tensor(digits.images[tr] / 16.0, dtype=torch.float32).unsqueeze(1)
        self.train_y = torch.tensor(digits.target[tr])
        val_cache = (digits.images[va] * 255.0 / 16.0).round().astype(np.uint8)[..., None]
        self.val_x = torch.stack([to_chw_tensor(img) for img in val_cache])
        self.val_y = torch.tensor(digits.target[va])

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.train_x, self.train_y), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.val_x, self.val_y), batch_size=200)


class DigitCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net((x - 0.3) / 0.4)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        if self.trainer.training:
            padded = F.pad(x, (1, 1, 1, 1))
            dx, dy = torch.randint(0, 3, (2,)).tolist()
            x = padded[:, :, dy:dy + 8, dx:dx + 8]
        return x, y

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2103)
    model = DigitCNN()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=DigitsDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"train_loss={float(m['train_loss_epoch']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
