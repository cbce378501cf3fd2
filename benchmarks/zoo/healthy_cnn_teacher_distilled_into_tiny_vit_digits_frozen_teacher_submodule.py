"""Healthy: knowledge distillation on the 8x8 scikit-learn digits. A small CNN teacher is first trained with a plain
PyTorch loop; it then lives inside the LightningModule as a frozen submodule (requires_grad off, kept in eval mode by
overriding `train()`, so its dropout stays off while the student trains). The student is a tiny ViT (2x2 patches,
CLS token, 2 pre-norm blocks) trained HF-style on `pixel_values`/`labels` dicts with
0.5 * CE + 0.5 * T^2 * KL(softmax(teacher/T) || softmax(student/T)), T = 3, `kl_div(log_target=False,
reduction="batchmean")`, AdamW with cosine per step. Final student val acc 0.96 (teacher 0.99)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout17"
T = 3.0


class Digits(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def make_teacher():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 16, 10))


def train_teacher(x, y, steps=300):
    teacher = make_teacher()
    opt = torch.optim.Adam(teacher.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=g)
        loss = F.cross_entropy(teacher(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return teacher


class TinyViT(nn.Module):
    def __init__(self, d=48, depth=2):
        super().__init__()
        self.patch = nn.Conv2d(1, d, 2, stride=2)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 10))

    def forward(self, pixel_values):
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1) + self.pos
        return self.head(self.blocks(x)[:, 0])


class Distiller(L.LightningModule):
    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher.requires_grad_(False).eval()
        self.student = TinyViT()

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch, batch_idx):
        logits = self.student(batch["pixel_values"])
        with torch.no_grad():
            t_logits = self.teacher(batch["pixel_values"])
        ce = F.cross_entropy(logits, batch["labels"])
        kd = F.kl_div(F.log_softmax(logits / T, -1), F.softmax(t_logits / T, -1), reduction="batchmean") * T * T
        loss = 0.5 * ce + 0.5 * kd
        self.log_dict({"train_loss": loss, "train_ce": ce, "train_kd": kd})
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.student(batch["pixel_values"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(-1) == batch["labels"]).float().mean())
        self.log("teacher_val_acc", (self.teacher(batch["pixel_values"]).argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.student.parameters(), lr=2e-3, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(99)
    d = load_digits()
    x = ((torch.tensor(d.data, dtype=torch.float32) / 16.0 - 0.3) / 0.4).view(-1, 1, 8, 8)
    y = torch.tensor(d.target)
    tr, va = train_test_split(range(len(y)), test_size=0.2, random_state=9, stratify=d.target)
    teacher = train_teacher(x[tr], y[tr])
    train_dl = DataLoader(Digits(x[tr], y[tr]), batch_size=32, shuffle=True)
    val_dl = DataLoader(Digits(x[va], y[va]), batch_size=256)
    trainer = L.Trainer(max_epochs=16, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="kd_vit"), enable_checkpointing=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Distiller(teacher), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM student_val_acc={float(m['val_acc']):.3f} teacher_val_acc={float(m['teacher_val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
