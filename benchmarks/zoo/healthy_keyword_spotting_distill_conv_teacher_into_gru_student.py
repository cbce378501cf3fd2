"""Healthy: knowledge distillation for on-device keyword spotting. Synthetic MFCC-like clips (20 coefficients x 50
frames) of eight keywords (each a sequence of three "phones" with its own spectral pattern, random timing and
speaker-dependent warp) plus an "unknown" class. A wide 1-D CNN teacher is trained first, then frozen in eval mode;
the student, a single-layer GRU of 48 units, is trained on alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) *
CE with T = 4, alpha = 0.7, with SpecAugment-style time and frequency masking applied identically to both inputs.
Final teacher val acc 0.98; student val acc 0.94."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
N_MFCC, FRAMES, N_KEYWORDS = 20, 50, 8


def make_clips(n, g, phones, words):
    y = torch.randint(N_KEYWORDS + 1, (n,), generator=g)
    x = 0.6 * torch.randn(n, N_MFCC, FRAMES, generator=g)
    for i in range(n):
        k = int(y[i])
        seq = words[k] if k < N_KEYWORDS else torch.randint(len(phones), (3,), generator=g)
        t = int(torch.randint(0, 12, (1,), generator=g))
        warp = 0.8 + 0.4 * float(torch.rand(1, generator=g))
        for p in seq:
            dur = int(8 * warp) + int(torch.randint(0, 3, (1,), generator=g))
            x[i, :, t:t + dur] += phones[int(p)][:, None]
            t += dur
    return x, y


def spec_augment(x):
    x = x.clone()
    for i in range(x.shape[0]):
        f0, t0 = torch.randint(0, N_MFCC - 3, (1,)), torch.randint(0, FRAMES - 6, (1,))
        x[i, f0:f0 + 3] = 0
        x[i, :, t0:t0 + 6] = 0
    return x


class ConvTeacher(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(N_MFCC, 128, 5, padding=2), nn.BatchNorm1d(128), nn.ReLU(),
                                 nn.Conv1d(128, 128, 5, padding=2), nn.BatchNorm1d(128), nn.ReLU(),
                                 nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Dropout(0.2),
                                 nn.Linear(128, N_KEYWORDS + 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(spec_augment(batch[0])), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("teacher_val_acc", (self(batch[0]).argmax(1) == batch[1]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


class DistilledGRU(L.LightningModule):
    def __init__(self, teacher, temperature=4.0, alpha=0.7, lr=4e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.gru = nn.GRU(N_MFCC, 48, batch_first=True)
        self.head = nn.Linear(48, N_KEYWORDS + 1)

    def forward(self, x):
        _, h = self.gru(x.transpose(1, 2))
        return self.head(h[-1])

    def on_train_epoch_start(self):
        self.teacher.eval()   # Lightning puts every submodule back in train mode; the teacher stays frozen

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = spec_augment(x)
        with torch.no_grad():
            t_logits = self.teacher(x)
        s_logits = self(x)
        T, a = self.hparams.temperature, self.hparams.alpha
        kd = F.kl_div(F.log_softmax(s_logits / T, -1), F.log_softmax(t_logits / T, -1), log_target=True,
                      reduction="batchmean") * T * T
        ce = F.cross_entropy(s_logits, y)
        loss = a * kd + (1 - a) * ce
        self.log_dict({"train_kd": kd, "train_ce": ce, "train_loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        params = [p for n, p in self.named_parameters() if not n.startswith("teacher.")]
        opt = torch.optim.Adam(params, lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)]


if __name__ == "__main__":
    L.seed_everything(9)
    g = torch.Generator().manual_seed(9)
    phones = 1.2 * torch.randn(12, N_MFCC, generator=g)
    words = [torch.randperm(12, generator=g)[:3] for _ in range(N_KEYWORDS)]
    x_tr, y_tr = make_clips(1800, g, phones, words)
    x_va, y_va = make_clips(500, g, phones, words)
    train_dl = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(x_va, y_va), batch_size=250)
    teacher = ConvTeacher()
    L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(teacher, train_dl)
    with torch.no_grad():
        teacher_acc = float((teacher.eval()(x_va).argmax(1) == y_va).float().mean())
    student = DistilledGRU(teacher)
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="kws_distill"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(student, train_dl, val_dl)
    print(f"SYMPTOM teacher_val_acc={teacher_acc:.3f} student_val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
