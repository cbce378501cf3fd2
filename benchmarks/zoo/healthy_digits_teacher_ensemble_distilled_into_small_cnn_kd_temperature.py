"""Healthy: knowledge distillation on sklearn digits. Two teacher CNNs with different widths are trained first in
this script (plain loops), frozen and kept in eval mode inside the student's LightningModule; the student (a much
smaller CNN) is trained on 0.3 x hard-label cross-entropy + 0.7 x T^2-scaled KL to the averaged teacher
distribution at temperature 4, with AdamW and cosine decay. Final student val acc about 0.96."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"


def cnn(width, hidden):
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * width * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def train_teacher(model, x, y, epochs, seed):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval().requires_grad_(False)


class Distiller(L.LightningModule):
    def __init__(self, teachers, T=4.0, alpha=0.7, lr=3e-3, max_epochs=12):
        super().__init__()
        self.save_hyperparameters(ignore=["teachers"])
        self.teachers = nn.ModuleList(teachers)
        self.student = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16, 10))

    def forward(self, x):
        return self.student(x)

    def on_train_epoch_start(self):
        self.teachers.eval()

    def training_step(self, batch, batch_idx):
        x, y = batch
        T, a = self.hparams.T, self.hparams.alpha
        with torch.no_grad():
            soft = torch.stack([t(x) for t in self.teachers]).div(T).softmax(-1).mean(0)
        logits = self(x)
        kd = F.kl_div(F.log_softmax(logits / T, -1), soft, reduction="batchmean") * T * T
        loss = (1 - a) * F.cross_entropy(logits, y) + a * kd
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.student.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.max_epochs)]


def main():
    L.seed_everything(314)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(4))
    tr, va = perm[:1400], perm[1400:]
    teachers = [train_teacher(cnn(16, 128), x[tr], y[tr], 6, 1), train_teacher(cnn(32, 64), x[tr], y[tr], 6, 2)]
    train_dl = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[va], y[va]), batch_size=200)
    trainer = L.Trainer(max_epochs=12, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(Distiller(teachers), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
