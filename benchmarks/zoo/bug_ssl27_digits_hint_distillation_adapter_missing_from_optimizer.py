"""Bug (optimizer coverage): FitNets-style knowledge distillation on the digits. A wide MLP teacher is trained first
(plain PyTorch loop), then frozen (`requires_grad_(False)`, kept in eval mode). The narrow student learns from the
hard labels, from the teacher's softened distribution (KL at temperature T=4, scaled by T^2) and from a hint loss:
a linear adapter maps the student's 32-d hidden layer onto the teacher's 256-d hidden layer and is matched with MSE.
The adapter is a module of the LightningModule, but `configure_optimizers` builds Adam from
`self.student.parameters()` only, so the adapter keeps its random initialisation forever. It still receives
gradients, the total loss still falls (the student bends its hidden layer towards a fixed random projection), so
nothing looks broken (accuracy is carried by the CE and KD terms), but the hint term, the point of the method,
never gets small.

Measured (seed 31, 15 epochs): this version val_acc=0.961 hint_mse=1.190; fixed version (adapter included in the
optimizer) val_acc=0.956 hint_mse=0.021."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout27"


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(64, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        h = self.hidden(x)
        return self.head(h), h


def train_teacher(x, y, epochs=60):
    teacher = MLP(256)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            F.cross_entropy(teacher(x[idx])[0], y[idx]).backward()
            opt.step()
    return teacher.eval().requires_grad_(False)


class HintDistillation(L.LightningModule):
    def __init__(self, teacher, T=4.0, alpha=0.5, beta=1.0, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher
        self.student = MLP(32)
        self.adapter = nn.Linear(32, 256)

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch, batch_idx):
        x, y = batch
        T = self.hparams.T
        with torch.no_grad():
            t_logits, t_hidden = self.teacher(x)
        s_logits, s_hidden = self.student(x)
        kd = F.kl_div(F.log_softmax(s_logits / T, 1), F.log_softmax(t_logits / T, 1), log_target=True,
                      reduction="batchmean") * T * T
        ce = F.cross_entropy(s_logits, y)
        hint = F.mse_loss(self.adapter(s_hidden), t_hidden)
        loss = self.hparams.alpha * ce + (1 - self.hparams.alpha) * kd + self.hparams.beta * hint
        self.log_dict({"train_loss": loss, "hint_mse": hint}, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits, _ = self.student(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.student.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    X, y = load_digits(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X / 16.0, y, test_size=0.2, random_state=1, stratify=y)
    x_tr, x_va = torch.tensor(X_tr, dtype=torch.float32), torch.tensor(X_va, dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)
    teacher = train_teacher(x_tr, y_tr)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(HintDistillation(teacher), DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=512))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} hint_mse={m['hint_mse'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
