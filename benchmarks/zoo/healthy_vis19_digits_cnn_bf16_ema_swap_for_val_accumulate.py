"""Healthy: BatchNorm CNN on sklearn 8x8 digits with random-crop (pad 1) augmentation, trained in `bf16-mixed` on
CPU with `accumulate_grad_batches=4` on micro-batches of 16, AdamW, and an exponential moving average of the weights
(decay 0.99, BatchNorm buffers copied) that is swapped in for validation and swapped back afterwards - the
validation metrics are those of the EMA model. Final val acc 0.99 (val loss 0.06)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"


class EMACNN(L.LightningModule):
    def __init__(self, lr=3e-3, ema_decay=0.99):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(64, 10)
        self.ema = None
        self.backup = None

    def forward(self, x):
        return self.classifier(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        # random crop with 1-pixel zero padding
        x = F.pad(x, (1, 1, 1, 1))
        i, j = torch.randint(0, 3, (2,)).tolist()
        x = x[:, :, i:i + 8, j:j + 8]
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx):
        state = self.state_dict()
        if self.ema is None:
            self.ema = {k: v.detach().clone() for k, v in state.items()}
            return
        d = self.hparams.ema_decay
        for k, v in state.items():
            if v.dtype.is_floating_point:
                self.ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.ema[k].copy_(v)

    def on_validation_epoch_start(self):
        if self.ema is not None:
            self.backup = {k: v.detach().clone() for k, v in self.state_dict().items()}
            self.load_state_dict(self.ema)

    def on_validation_epoch_end(self):
        if self.backup is not None:
            self.load_state_dict(self.backup)
            self.backup = None

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits.float(), y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


def main():
    L.seed_everything(101)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    x = (x / 16.0 - 0.3) / 0.4
    y = torch.tensor(digits.target)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=1, stratify=y)
    train_dl = DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True)
    val_dl = DataLoader(TensorDataset(x_va, y_va), batch_size=128)
    model = EMACNN()
    trainer = L.Trainer(max_epochs=10, precision="bf16-mixed", accumulate_grad_batches=4, accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
