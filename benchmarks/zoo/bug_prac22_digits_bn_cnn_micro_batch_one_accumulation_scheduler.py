"""Bug: a digits CNN (conv-BatchNorm-ReLU blocks) whose training recipe was ported from a high-resolution pipeline
that could only fit one image per step: `batch_size=1` in the LightningDataModule and Lightning's
GradientAccumulationScheduler growing the effective batch from 8 to 32 images (epoch 0: 8, epoch 2: 32). AdamW
with a per-epoch cosine decay, accuracy from torchmetrics, validation on 300 held-out digits in batches of 100.

Accumulation sums gradients but does not make BatchNorm see more than one image: every training forward pass
normalises each channel over the 8x8 (later 4x4) positions of a single image, so in training the layers behave like
instance normalisation, while the running statistics used in eval mode are averages of per-image statistics and do
not match. Training loss falls to a low value; validation in eval mode is much worse than it should be. Symptom: val
accuracy 0.513 (val loss 2.145) vs 0.963 (0.599) with `batch_size=32` and no accumulation."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import GradientAccumulationScheduler
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout22"
BATCH_SIZE = 1


class DigitsDataModule(L.LightningDataModule):
    def __init__(self, batch_size, n_train=480):
        super().__init__()
        self.batch_size, self.n_train = batch_size, n_train

    def setup(self, stage):
        digits = load_digits()
        x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
        x = (x - x.mean()) / x.std()
        y = torch.tensor(digits.target)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(5))
        tr, va = perm[:self.n_train], perm[self.n_train:self.n_train + 300]
        self.train_set, self.val_set = TensorDataset(x[tr], y[tr]), TensorDataset(x[va], y[va])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=100)


def block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class DigitCNN(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(block(1, 16), block(16, 32), nn.MaxPool2d(2), block(32, 32),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        self.val_acc = MulticlassAccuracy(10, average="micro")

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
        self.val_acc.update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.val_acc)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2206)
    accumulate = GradientAccumulationScheduler(scheduling={0: 8, 2: 32})
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[accumulate] + lightning_sanity.default_callbacks())
    trainer.fit(DigitCNN(), DigitsDataModule(BATCH_SIZE))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
