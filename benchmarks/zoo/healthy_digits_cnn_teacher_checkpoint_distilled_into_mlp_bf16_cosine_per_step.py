"""Healthy: knowledge distillation from a saved teacher. A CNN teacher is trained in this script on the digits
training split, saved with `torch.save` and reloaded frozen (eval mode, `requires_grad_(False)`) inside the
LightningModule; a small MLP student learns from HuggingFace-image-style dict batches (`pixel_values`, `labels`)
with the usual mix of hard-label cross-entropy and temperature-4 KL to the teacher's softened logits (scaled by
T^2, `log_target=False` with probabilities as the target), under `precision="bf16-mixed"` on CPU, AdamW and a
CosineAnnealingLR stepped per batch. Final student val acc 0.962 (val loss 0.11; teacher 0.984), ~10 s."""

import os
import tempfile

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"


def make_teacher():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))


def train_teacher(x, y, path):
    teacher = make_teacher()
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(9)
    for _ in range(8):
        for idx in torch.randperm(len(x), generator=g).split(32):
            loss = F.cross_entropy(teacher(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(teacher.state_dict(), path)


class DigitImages(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


class Distiller(L.LightningModule):
    def __init__(self, teacher_path, temperature=4.0, alpha=0.7, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.teacher = make_teacher()
        self.teacher.load_state_dict(torch.load(teacher_path))
        self.teacher.requires_grad_(False)
        self.student = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch, batch_idx):
        x, y = batch["pixel_values"], batch["labels"]
        t = self.hparams.temperature
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        student_logits = self.student(x)
        kd = F.kl_div(F.log_softmax(student_logits.float() / t, -1), F.softmax(teacher_logits.float() / t, -1),
                      reduction="batchmean") * t * t
        ce = F.cross_entropy(student_logits.float(), y)
        loss = self.hparams.alpha * kd + (1 - self.hparams.alpha) * ce
        self.log_dict({"train_loss": loss, "train_kd": kd, "train_ce": ce})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch["pixel_values"], batch["labels"]
        logits = self.student(x).float()
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())
        self.log("val_teacher_acc", (self.teacher(x).argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.student.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches,
                                                           eta_min=self.hparams.lr * 0.02)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(4321)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    tr, va = train_test_split(torch.arange(len(y)), test_size=0.25, random_state=7, stratify=d.target)
    path = os.path.join(tempfile.mkdtemp(), "teacher_cnn.pt")
    train_teacher(x[tr], y[tr], path)
    train = DataLoader(DigitImages(x[tr], y[tr]), batch_size=32, shuffle=True)
    val = DataLoader(DigitImages(x[va], y[va]), batch_size=256)
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, precision="bf16-mixed",
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Distiller(path), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM student_val_acc={float(m['val_acc']):.3f} teacher_val_acc={float(m['val_teacher_acc']):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
