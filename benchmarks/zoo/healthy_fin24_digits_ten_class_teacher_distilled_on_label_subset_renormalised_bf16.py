"""Healthy: distilling a general teacher into a specialist student for a subset of its labels. A CNN teacher is
trained (short plain-PyTorch phase) on all ten scikit-learn digits. The product only needs digits 5-9, so a small MLP
student with a 5-way head is trained in Lightning on those images with cross-entropy on the remapped labels plus
temperature-scaled KL to the teacher (T = 3, weight 0.7, scaled by T^2), under bf16 autocast on CPU, AdamW with
OneCycle per step.

Why it is correct: the teacher's ten logits are sliced to the classes 5-9, in the same order as the remapped student
labels (`y - 5`), before the tempered softmax, so the soft targets are the teacher's distribution renormalised over
the student's label set (not ten-way probabilities truncated, not mis-ordered); KL is computed as
`kl_div(log_softmax(student / T), log_softmax(teacher / T), log_target=True, reduction="batchmean")` in float32;
the teacher is frozen, in eval mode, used under no_grad and absent from the optimizer (it has no dropout/BN, so
its mode does not matter for its outputs); both splits come from one permutation of the 5-9 images and the teacher
never sees the validation images. Measured: student val acc 0.956, val CE 0.122 (without the KD term 0.959 / 0.098:
on a task this easy the teacher adds little, which is not the point here)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"
SUBSET = slice(5, 10)


class SubsetDistiller(L.LightningModule):
    def __init__(self, teacher, T=3.0, kd_weight=0.7, lr=5e-3):
        super().__init__()
        self.teacher = teacher.requires_grad_(False).eval()
        self.student = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 5))
        self.T, self.kd_weight, self.lr = T, kd_weight, lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            t_logits = self.teacher(x)[:, SUBSET].float()
        s_logits = self.student(x).float()
        ce = F.cross_entropy(s_logits, y)
        kd = F.kl_div(F.log_softmax(s_logits / self.T, 1), F.log_softmax(t_logits / self.T, 1),
                      log_target=True, reduction="batchmean") * self.T ** 2
        loss = (1 - self.kd_weight) * ce + self.kd_weight * kd
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.student(x).float()
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.student.parameters(), lr=self.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2412)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 8.0 - 1.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    perm = torch.as_tensor(np.random.default_rng(6).permutation(len(X)))
    X, y = X[perm], y[perm]
    high = torch.nonzero(y >= 5).squeeze(1)
    tr, va = high[:600], high[600:]
    teacher_rows = torch.cat([torch.nonzero(y < 5).squeeze(1), tr])

    teacher = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                            nn.Flatten(), nn.Linear(32 * 64, 10))
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for _ in range(150):
        idx = teacher_rows[torch.randint(0, len(teacher_rows), (64,))]
        opt.zero_grad()
        F.cross_entropy(teacher(X[idx]), y[idx]).backward()
        opt.step()

    model = SubsetDistiller(teacher)
    trainer = L.Trainer(max_epochs=10, precision="bf16-mixed", accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(X[tr], y[tr] - 5), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X[va], y[va] - 5), batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
