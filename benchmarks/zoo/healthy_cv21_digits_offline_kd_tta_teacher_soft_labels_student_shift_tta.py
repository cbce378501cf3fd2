"""Healthy: offline knowledge distillation on the 8x8 scikit-learn digits. A BatchNorm CNN teacher is trained first
(plain PyTorch, 4 epochs, training split only); its soft labels are computed once, in eval mode under `no_grad`,
as the mean of its logits over five shifted views (identity and one-pixel rolls in each direction: test-time
augmentation for the teacher). An MLP student is then trained with Lightning on (image, label, teacher logits)
triples: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE, with T = 4, alpha = 0.7, `F.kl_div` fed
student log-probabilities and teacher log-probabilities with `log_target=True`, `reduction="batchmean"`. The
student's `forward` (used in validation) averages its logits over the same five views, regrouped view-major:
`.view(V, B, -1).mean(0)`.

Right: teacher trained and its soft labels computed from the training split only, teacher frozen and in eval
mode, KL direction and temperature scaling as in Hinton et al., the TTA regrouping matches the stacking order.
Result: student val accuracy 0.922, val CE 0.42 (softer, as expected from T = 4 targets; teacher 0.987); the same
MLP with alpha = 0 (hard labels only) reaches 0.932 / 0.16: the tiny student does not gain here, nothing is wrong."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"
SHIFTS = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]


def shifted_views(x):
    return torch.cat([torch.roll(x, shifts=s, dims=(2, 3)) for s in SHIFTS])


def train_teacher(x, y):
    teacher = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 16, 10))
    opt = torch.optim.Adam(teacher.parameters(), lr=2e-3)
    for _ in range(4):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True):
            opt.zero_grad()
            F.cross_entropy(teacher(xb), yb).backward()
            opt.step()
    teacher.eval()
    with torch.no_grad():
        soft = teacher(shifted_views(x)).view(len(SHIFTS), len(x), -1).mean(0)
    return teacher, soft


class DistilledStudent(L.LightningModule):
    def __init__(self, temperature=4.0, alpha=0.7, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.student = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.student(shifted_views(x)).view(len(SHIFTS), x.shape[0], -1).mean(0)

    def training_step(self, batch, batch_idx):
        x, y, teacher_logits = batch
        t = self.hparams.temperature
        logits = self.student(x)
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                      log_target=True, reduction="batchmean") * t * t
        ce = F.cross_entropy(logits, y)
        loss = self.hparams.alpha * kd + (1 - self.hparams.alpha) * ce
        self.log_dict({"train_loss": loss, "train_kd": kd, "train_ce": ce}, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2111)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    teacher, soft = train_teacher(x[tr], y[tr])
    with torch.no_grad():
        teacher_acc = (teacher(x[va]).argmax(1) == y[va]).float().mean()
    model = DistilledStudent()
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[tr], y[tr], soft), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM student_val_acc={float(m['val_acc']):.3f} teacher_val_acc={float(teacher_acc):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
