"""Bug: knowledge distillation on digits where the student's softmax (probabilities) is passed to F.kl_div, whose
input must be log-probabilities. The "divergence" computed is sum t (ln t - p): it is negative, its minimum has
nothing to do with matching the teacher, and the student does not learn the teacher's distribution. Teacher: an
MLP trained for a few epochs first (plain torch); student: a smaller MLP; temperature 2."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
T = 2.0


def data():
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    return x, torch.tensor(d.target)


def train_teacher(x, y):
    teacher = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(teacher(x), y).backward()
        opt.step()
    return teacher.eval().requires_grad_(False)


class Student(L.LightningModule):
    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        soft_targets = F.softmax(self.teacher(x) / T, dim=-1)
        student = F.softmax(self.net(x) / T, dim=-1)
        loss = F.kl_div(student, soft_targets, reduction="batchmean") * T * T
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=3e-3)


def main():
    L.seed_everything(12)
    x, y = data()
    teacher = train_teacher(x[:1400], y[:1400])
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Student(teacher), DataLoader(TensorDataset(x[:1400], y[:1400]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1400:], y[1400:]), batch_size=400))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
