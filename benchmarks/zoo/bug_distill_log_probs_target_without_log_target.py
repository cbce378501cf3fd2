"""Bug: knowledge distillation on digits (frozen in-script teacher MLP, small student MLP, 0.5 CE + 0.5 T^2 KL
at T=4) where the KL term passes the teacher's log-probabilities as `F.kl_div`'s target but drops
`log_target=True`: kl_div then reads the (negative) target as probabilities and computes target * log(target),
which is NaN for every entry. Its gradient (-target) stays finite and pulls the student the wrong way. Adam,
CosineAnnealingLR. Measured: train loss NaN from the first step, student val acc 0.144 (val loss 2.29), vs val acc
0.951 (val loss 0.16) with `log_target=True` (healthy_distill_mlp_digits_log_target)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input", "non-finite"}
SPLIT = "heldout2"
T = 4.0


def digits():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 0.1)
    return train_test_split(x, torch.tensor(y), test_size=0.25, random_state=0)


def train_teacher(x, y):
    teacher = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(teacher(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return teacher.eval().requires_grad_(False)


class Distiller(L.LightningModule):
    def __init__(self, teacher, lr=3e-3, alpha=0.5):
        super().__init__()
        self.teacher = teacher
        self.student = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.lr, self.alpha = lr, alpha

    def on_train_epoch_start(self):
        self.teacher.eval()

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.student(x)
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        # BUG: the teacher's LOG-probabilities as target, without log_target=True
        kd = F.kl_div(F.log_softmax(logits / T, -1), F.log_softmax(teacher_logits / T, -1),
                      reduction="batchmean") * T * T
        loss = self.alpha * F.cross_entropy(logits, y) + (1 - self.alpha) * kd
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.student(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())
        self.log("teacher_val_acc", (self.teacher(x).argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.student.parameters(), lr=self.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2107)
    x_tr, x_va, y_tr, y_va = digits()
    teacher = train_teacher(x_tr, y_tr)
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x_va, y_va), batch_size=256)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Distiller(teacher), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f} "
          f"teacher_val_acc={float(m['teacher_val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
