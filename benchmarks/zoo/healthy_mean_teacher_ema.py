"""Healthy: a mean-teacher setup: the student trains with cross-entropy plus a consistency loss to an EMA
teacher that lives inside the LightningModule (requires_grad False, updated in on_train_batch_end, never in the
optimizer). Digits MLP with Dropout, Adam."""

import copy

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class MeanTeacher(L.LightningModule):
    def __init__(self, ema=0.99, consistency=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.student = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)

    def forward(self, x):
        return self.student(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x + 0.05 * torch.randn_like(x))
        with torch.no_grad():
            target = F.softmax(self.teacher(x + 0.05 * torch.randn_like(x)), dim=1)
        loss = F.cross_entropy(logits, y) + self.hparams.consistency * F.mse_loss(F.softmax(logits, 1), target)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                t.mul_(self.hparams.ema).add_(s, alpha=1 - self.hparams.ema)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc_teacher", (self.teacher(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=1e-3)


def main():
    L.seed_everything(101)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MeanTeacher(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
