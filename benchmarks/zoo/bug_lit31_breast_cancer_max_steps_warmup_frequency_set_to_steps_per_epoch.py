"""Bug: a breast-cancer MLP trained for a fixed budget of optimizer steps (`max_steps=400`) with a linear warm-up of
100 steps followed by cosine decay, written as a LambdaLR over step counts and returned as
`{"scheduler": ..., "interval": "step", "frequency": steps_per_epoch}`. The author read "frequency" as "how many
steps make an epoch" (it is "call scheduler.step() every `frequency` intervals"), so the scheduler advances only once
per ~29 optimizer steps: after 400 steps it has counted 13 and the learning rate is still at 14% of its peak, in the
middle of the warm-up, when training ends. Training still converges, slowly: final lr 4.2e-4,
val loss 0.099 (val acc 0.965) against 0.030 (val acc 0.982) with "frequency": 1.
"""

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

EXPECT = {"lr-schedule"}
SPLIT = "heldout31"

MAX_STEPS, WARMUP = 400, 100


def warmup_cosine(step):
    if step < WARMUP:
        return (step + 1) / WARMUP
    return 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (MAX_STEPS - WARMUP)))


class TumourMLP(L.LightningModule):
    def __init__(self, steps_per_epoch, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "interval": "step",
                                 "frequency": self.hparams.steps_per_epoch}}


def main():
    L.seed_everything(7)
    data = load_breast_cancer()
    x_tr, x_va, y_tr, y_va = train_test_split(data.data, data.target, test_size=0.2, stratify=data.target,
                                              random_state=7)
    scaler = StandardScaler().fit(x_tr)
    train = TensorDataset(torch.tensor(scaler.transform(x_tr), dtype=torch.float32), torch.tensor(y_tr))
    val = TensorDataset(torch.tensor(scaler.transform(x_va), dtype=torch.float32), torch.tensor(y_va))
    train_loader = DataLoader(train, batch_size=16, shuffle=True)
    trainer = L.Trainer(max_steps=MAX_STEPS, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks() + [L.pytorch.callbacks.LearningRateMonitor()])
    trainer.fit(TumourMLP(steps_per_epoch=len(train_loader)), train_loader, DataLoader(val, batch_size=128))
    print(f"SYMPTOM final_lr={trainer.optimizers[0].param_groups[0]['lr']:.2e} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f} "
          f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
