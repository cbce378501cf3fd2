"""Healthy: knowledge distillation on sklearn digits (16x16). A VGG-style teacher is trained first (the "released
checkpoint"), then a thin student CNN learns from the labels, from the teacher's temperature-softened logits
(KL with `log_target=False`, scaled by T^2, T=4) and from a FitNets hint: a 1x1-conv connector maps the student's
middle feature map onto the teacher's and an MSE pulls them together. The teacher is frozen (`requires_grad_(False)`,
outside the optimizer) and pinned to eval mode by overriding `train()`, so its BatchNorm/Dropout stay deterministic.
The connector is trained with the student and dropped at inference. Student val acc 0.99 (teacher 0.99)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VGGTeacher(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(1, 64), conv_bn(64, 64), nn.MaxPool2d(2))     # 8x8
        self.stage2 = nn.Sequential(conv_bn(64, 128), conv_bn(128, 128), nn.MaxPool2d(2))  # 4x4 (hint layer)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 16, 256),
                                        nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(256, 10))

    def forward(self, x, return_hint=False):
        hint = self.stage2(self.stage1(x))
        logits = self.classifier(hint)
        return (logits, hint) if return_hint else logits


class ThinStudent(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(1, 16), conv_bn(16, 16), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(conv_bn(16, 32), conv_bn(32, 32), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, 10))

    def forward(self, x, return_hint=False):
        guided = self.stage2(self.stage1(x))
        logits = self.head(guided)
        return (logits, guided) if return_hint else logits


class TeacherTraining(L.LightningModule):
    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.teacher(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class HintDistillation(L.LightningModule):
    def __init__(self, teacher, temperature=4.0, alpha=0.5, beta=0.5, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher.requires_grad_(False)
        self.student = ThinStudent()
        self.connector = nn.Sequential(nn.Conv2d(32, 128, 1, bias=False), nn.BatchNorm2d(128))

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, x):
        return self.student(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            t_logits, t_hint = self.teacher(x, return_hint=True)
        s_logits, s_guided = self.student(x, return_hint=True)
        T = self.hparams.temperature
        kd = F.kl_div(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1), reduction="batchmean") * T * T
        ce = F.cross_entropy(s_logits, y)
        hint = F.mse_loss(self.connector(s_guided), t_hint)
        loss = (1 - self.hparams.alpha) * ce + self.hparams.alpha * kd + self.hparams.beta * hint
        self.log_dict({"train_ce": ce, "train_kd": kd, "train_hint": hint})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.student(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())
        self.log("teacher_val_acc", (self.teacher(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        params = list(self.student.parameters()) + list(self.connector.parameters())
        opt = torch.optim.Adam(params, lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 6], gamma=0.3)]


def main():
    L.seed_everything(19)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = (F.interpolate(x, size=16, mode="bilinear", align_corners=False) - 0.3) / 0.4
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    train_loader = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[va], y[va]), batch_size=200)

    teacher = VGGTeacher()
    L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
              logger=False, enable_checkpointing=False).fit(TeacherTraining(teacher), train_loader)

    model = HintDistillation(teacher)
    trainer = L.Trainer(
        max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="digits_hint_kd"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, train_loader, val_loader)
    m = trainer.callback_metrics
    print(f"SYMPTOM student val_acc={m['val_acc']:.3f} teacher val_acc={m['teacher_val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
