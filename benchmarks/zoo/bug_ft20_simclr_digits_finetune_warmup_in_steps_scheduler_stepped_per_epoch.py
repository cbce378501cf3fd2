"""Bug: contrastive pretraining then fine-tuning on sklearn's digits. Stage 1 pretrains an MLP encoder with a
SimCLR-style NT-Xent loss on two augmented views of every image (random 1-pixel shifts, pixel dropout, noise) with a
projection head; stage 2 throws the projector away and fine-tunes encoder + new linear head on 600 labelled images
with discriminative learning rates (body 10x lower than head), SGD with momentum and a linear-warm-up + cosine
schedule written as a LambdaLR over optimizer steps.

The warm-up length is computed in optimizer steps (`0.1 * trainer.estimated_stepping_batches`, 29 steps), but
the scheduler is returned as `[opt], [sched]`, so Lightning steps it once per epoch. After 8 epochs the lambda has
only reached step 8 of the 29-step warm-up: the learning rate never climbs above ~28 % of its target and is ~3 % in
the first epoch, and the cosine part never begins. Nothing errors; fine-tuning just crawls. Symptom: val acc 0.922 /
val loss 0.287 vs 0.966 / 0.120 with `{"scheduler": sched, "interval": "step"}`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout20"


def augment(x):
    imgs = x.view(-1, 8, 8)
    dx, dy = torch.randint(-1, 2, (2,)).tolist()
    imgs = torch.roll(imgs, shifts=(dy, dx), dims=(1, 2))
    imgs = imgs * (torch.rand_like(imgs) > 0.15) + 0.05 * torch.randn_like(imgs)
    return imgs.reshape(-1, 64)


def make_encoder():
    return nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 64))


class SimCLR(L.LightningModule):
    def __init__(self, temperature=0.2):
        super().__init__()
        self.encoder = make_encoder()
        self.projector = nn.Sequential(nn.ReLU(), nn.Linear(64, 32))
        self.temperature = temperature

    def training_step(self, batch, batch_idx):
        (x,) = batch
        z = F.normalize(self.projector(self.encoder(torch.cat([augment(x), augment(x)]))), dim=1)
        n = x.shape[0]
        sim = z @ z.T / self.temperature
        sim.fill_diagonal_(float("-inf"))
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(x.device)
        loss = F.cross_entropy(sim, targets)
        self.log("ntxent", loss, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class FineTune(L.LightningModule):
    def __init__(self, encoder, lr=0.05, body_mult=0.1, warmup_frac=0.1):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(F.relu(self.encoder(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        lr = self.hparams.lr
        opt = torch.optim.SGD([
            {"params": self.encoder.parameters(), "lr": lr * self.hparams.body_mult},
            {"params": self.head.parameters(), "lr": lr},
        ], momentum=0.9)
        total = self.trainer.estimated_stepping_batches
        warmup = max(1, int(self.hparams.warmup_frac * total))

        def lr_lambda(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return [opt], [sched]


def main():
    L.seed_everything(515)
    digits = load_digits()
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)

    simclr = SimCLR()
    pre = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                    enable_checkpointing=False, enable_model_summary=False)
    pre.fit(simclr, DataLoader(TensorDataset(X), batch_size=128, shuffle=True, drop_last=True))

    X_tr, X_va, y_tr, y_va = train_test_split(X, y, train_size=600, stratify=y, random_state=0)
    model = FineTune(simclr.encoder)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(X_tr, y_tr), batch_size=16, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(X_va, y_va), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"final_head_lr={trainer.optimizers[0].param_groups[1]['lr']:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
