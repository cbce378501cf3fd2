"""Healthy: knowledge distillation (Hinton et al. 2015). A wide teacher MLP is trained first with a plain torch
loop on sklearn digits, then frozen in eval mode; a small student is trained with
alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y), T = 4. Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
T, ALPHA = 4.0, 0.7


def train_teacher(x, y):
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10))
    opt = torch.optim.Adam(teacher.parameters(), lr=2e-3)
    for _ in range(6):
        for i in range(0, len(y), 64):
            opt.zero_grad()
            F.cross_entropy(teacher(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return teacher.eval().requires_grad_(False)


class Distiller(L.LightningModule):
    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.student(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        s = self(x)
        with torch.no_grad():
            t = self.teacher(x)
        kd = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T
        loss = ALPHA * kd + (1 - ALPHA) * F.cross_entropy(s, y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        s = self(x)
        self.log("val_loss", F.cross_entropy(s, y))
        self.log("val_acc", (s.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=3e-3)

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self


def main():
    L.seed_everything(1801)
    d = load_digits()
    x, y = (torch.tensor(d.data, dtype=torch.float32) / 16.0 - 0.3) / 0.4, torch.tensor(d.target)
    teacher = train_teacher(x[:1400], y[:1400])
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Distiller(teacher), DataLoader(TensorDataset(x[:1400], y[:1400]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[1400:], y[1400:]), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
