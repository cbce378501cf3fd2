"""Healthy: knowledge distillation with privileged information on the breast-cancer data. The teacher (an MLP with
dropout over all 30 standardized features) is trained first in a plain loop, then frozen: `requires_grad_(False)`
and pinned to eval mode by overriding `train()`, so Lightning's `model.train()` cannot switch its dropout back on.
The student only gets the 10 "mean ..." measurements (the cheap ones) and is trained on
alpha * CE(hard labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T) with T=3; the T^2 factor keeps the soft
term's gradient on the same scale as the CE term. `kl_div` gets student log-probabilities and teacher
log-probabilities with `log_target=True`, `reduction="batchmean"`. The teacher is never in the optimizer and gets no
gradient by design; validation scores the student alone with plain CE on held-out rows (scaler fitted on the
training split). Own metric (seed 81, 25 epochs): student val acc 0.951, val CE 0.127."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout27"

N_CHEAP = 10  # the "mean radius" ... "mean fractal dimension" columns


def train_teacher(x, y, epochs=80):
    teacher = nn.Sequential(nn.Linear(30, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 2))
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(teacher(x[idx]), y[idx]).backward()
            opt.step()
    return teacher.eval().requires_grad_(False)


class PrivilegedDistillation(L.LightningModule):
    def __init__(self, teacher, T=3.0, alpha=0.3, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher
        self.student = nn.Sequential(nn.Linear(N_CHEAP, 32), nn.ReLU(), nn.Linear(32, 2))

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch, batch_idx):
        x, y = batch
        T, alpha = self.hparams.T, self.hparams.alpha
        with torch.no_grad():
            t_logits = self.teacher(x)
        s_logits = self.student(x[:, :N_CHEAP])
        kd = F.kl_div(F.log_softmax(s_logits / T, 1), F.log_softmax(t_logits / T, 1), log_target=True,
                      reduction="batchmean") * T ** 2
        ce = F.cross_entropy(s_logits, y)
        loss = alpha * ce + (1 - alpha) * kd
        self.log_dict({"train_loss": loss, "kd": kd, "ce": ce}, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.student(x[:, :N_CHEAP])
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(81)
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=8, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    x_tr = torch.tensor(scaler.transform(X_tr), dtype=torch.float32)
    x_va = torch.tensor(scaler.transform(X_va), dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)
    teacher = train_teacher(x_tr, y_tr)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PrivilegedDistillation(teacher),
                DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
