"""Bug: knowledge distillation on the 8x8 digits. A CNN teacher is trained first (plain PyTorch loop, then frozen);
the Lightning student is a small MLP trained with `alpha * T^2 * KD + (1 - alpha) * CE(labels)`. The KD term is
written with `F.cross_entropy(student_logits / T, teacher_logits / T)`, since `cross_entropy` accepts soft targets,
but the soft targets must be probabilities and the teacher's *logits* are passed (the `.softmax(-1)` was dropped).
Logit targets do not sum to one and are negative for most classes, so the "cross-entropy" is unbounded below: the
student is rewarded for driving the probability of every class with a negative teacher logit to zero, its logits
grow without limit and the loss goes negative and keeps falling. Symptom: student val acc 0.09 (val CE 1e4,
train loss -1.3e5 and falling) vs 0.96 (val CE 0.11) with `softmax(teacher_logits / T)` as the target; the teacher
itself scores 0.99."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout10"


def make_teacher():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def train_teacher(train_ds, epochs=6):
    teacher = make_teacher()
    opt = torch.optim.Adam(teacher.parameters(), lr=2e-3)
    loader = DataLoader(train_ds, batch_size=64, shuffle=True)
    teacher.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(teacher(x), y).backward()
            opt.step()
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class DistilledStudent(L.LightningModule):
    def __init__(self, teacher, temperature=4.0, alpha=0.7, lr=2e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher
        self.student = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))

    def forward(self, x):
        return self.student(x)

    def on_train_epoch_start(self):
        self.teacher.eval()

    def training_step(self, batch, batch_idx):
        x, y = batch
        t = self.hparams.temperature
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        logits = self(x)
        kd = F.cross_entropy(logits / t, teacher_logits / t) * t * t
        ce = F.cross_entropy(logits, y)
        loss = self.hparams.alpha * kd + (1 - self.hparams.alpha) * ce
        self.log_dict({"train/kd": kd, "train/ce": ce, "train/loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/ce", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(808)
    digits = load_digits()
    x = (torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    ds = TensorDataset(x, torch.tensor(digits.target))
    train_ds, val_ds = random_split(ds, [1437, 360], generator=torch.Generator().manual_seed(2))

    teacher = train_teacher(train_ds)
    with torch.no_grad():
        xv, yv = ds.tensors[0][val_ds.indices], ds.tensors[1][val_ds.indices]
        teacher_acc = (teacher(xv).argmax(-1) == yv).float().mean()

    model = DistilledStudent(teacher)
    trainer = L.Trainer(
        max_epochs=15,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="distill_digits"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM teacher_val_acc={teacher_acc:.3f} student_val_acc={float(m['val/acc']):.3f} "
          f"student_val_ce={float(m['val/ce']):.3f} last_train_loss={float(m['train/loss']):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
