"""Bug: transfer on scikit-learn breast cancer with a delayed-unfreeze schedule expressed through the learning rate.
An MLP encoder is pretrained (short plain-PyTorch phase) as a denoising autoencoder on the training features; the
classifier fine-tune then puts the encoder and a fresh head in one AdamW optimizer with two parameter groups and a
per-group LambdaLR stepped every batch: the head warms up and decays with a cosine, the encoder is meant to be "frozen"
for the first third of the steps (multiplier 0) and then warm up to its own rate and follow the same cosine.

The encoder group was declared with `"lr": 0.0` ("it is frozen at the start, the lambda brings it in later"), but
LambdaLR multiplies each group's *initial* learning rate by the lambda. 0 times anything is 0, so the encoder's learning
rate is zero for the whole run even though its parameters require grad and receive gradients every step. The head alone
still learns a decent probe on the pretrained features, so nothing looks wrong. Symptom: val BCE 0.147 (acc 0.951) and
the encoder weights move by exactly 0; with the encoder group's base lr 1e-3 the encoder moves (norm 0.79) and val BCE
is 0.103 (acc 0.951)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule", "update-ratio"}
SPLIT = "heldout24"


def encoder():
    return nn.Sequential(nn.Linear(30, 64), nn.GELU(), nn.Linear(64, 16), nn.GELU())


class Classifier(L.LightningModule):
    def __init__(self, enc, unfreeze_frac=1 / 3, warmup=30):
        super().__init__()
        self.enc = enc
        self.head = nn.Linear(16, 1)
        self.unfreeze_frac = unfreeze_frac
        self.warmup = warmup

    def forward(self, x):
        return self.head(self.enc(x)).squeeze(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        total = self.trainer.estimated_stepping_batches
        start = int(total * self.unfreeze_frac)

        def head_lambda(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            return 0.5 * (1 + math.cos(math.pi * (step - self.warmup) / (total - self.warmup)))

        def enc_lambda(step):
            if step < start:
                return 0.0
            return min(1.0, (step - start + 1) / self.warmup) * head_lambda(step)

        opt = torch.optim.AdamW([
            {"params": self.enc.parameters(), "lr": 0.0},  # frozen at the start, enc_lambda brings it in later
            {"params": self.head.parameters(), "lr": 1e-2},
        ], weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, [enc_lambda, head_lambda])
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2405)
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    X_tr = torch.tensor(scaler.transform(X_tr), dtype=torch.float32)
    X_va = torch.tensor(scaler.transform(X_va), dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr, dtype=torch.float32), torch.tensor(y_va, dtype=torch.float32)

    enc, dec = encoder(), nn.Linear(16, 30)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        F.mse_loss(dec(enc(X_tr + 0.3 * torch.randn_like(X_tr))), X_tr).backward()
        opt.step()
    before = torch.cat([p.detach().flatten().clone() for p in enc.parameters()])

    model = Classifier(enc)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(X_tr, y_tr), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(X_va, y_va), batch_size=256))
    moved = (torch.cat([p.detach().flatten() for p in enc.parameters()]) - before).norm()
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f} "
          f"encoder_moved={float(moved):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
