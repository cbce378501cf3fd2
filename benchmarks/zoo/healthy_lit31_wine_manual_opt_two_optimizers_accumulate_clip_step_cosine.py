"""Healthy: wine classifier trained with manual optimization, two optimizers on one loss (AdamW for the feature
body, SGD with Nesterov momentum for the linear head, a common recipe when the head wants a larger, differently
behaved step), manual gradient accumulation over 2 micro-batches, and per-optimizer clipping with
`self.clip_gradients`. Every micro-batch loss is divided by the accumulation factor before `manual_backward`, both
optimizers are zeroed right after they step (so gradients never leak into the next accumulation window), and the
optimizer step also fires on `trainer.is_last_batch`. Both cosine schedulers come back from `self.lr_schedulers()`
and are stepped once per optimizer step; their `T_max` is the number of optimizer steps (batches per epoch rounded
up over the accumulation factor, times `max_epochs`) and they bottom out at 5% of the base rate.
Own metric: val acc 1.000 (val loss 0.013), and the body learning rate ends exactly at its floor, 1e-4.
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"

ACCUM = 2


class WineNet(L.LightningModule):
    def __init__(self, lr_body=2e-3, lr_head=5e-2, clip=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.body = nn.Sequential(nn.Linear(13, 64), nn.SiLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.SiLU())
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        optimizers, schedulers = self.optimizers(), self.lr_schedulers()
        loss = F.cross_entropy(self(x), y)
        self.manual_backward(loss / ACCUM)
        if (batch_idx + 1) % ACCUM == 0 or self.trainer.is_last_batch:
            for opt, sched in zip(optimizers, schedulers):
                self.clip_gradients(opt, gradient_clip_val=self.hparams.clip, gradient_clip_algorithm="norm")
                opt.step()
                opt.zero_grad()
                sched.step()
        self.log("train_loss", loss, on_epoch=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        batches_per_epoch = self.trainer.estimated_stepping_batches // self.trainer.max_epochs
        total = math.ceil(batches_per_epoch / ACCUM) * self.trainer.max_epochs
        opt_body = torch.optim.AdamW(self.body.parameters(), lr=self.hparams.lr_body, weight_decay=1e-2)
        opt_head = torch.optim.SGD(self.head.parameters(), lr=self.hparams.lr_head, momentum=0.9, nesterov=True)
        scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.05 * o.defaults["lr"])
                  for o in (opt_body, opt_head)]
        return [opt_body, opt_head], scheds


def main():
    L.seed_everything(808)
    data = load_wine()
    x_tr, x_va, y_tr, y_va = train_test_split(data.data, data.target, test_size=0.25, stratify=data.target,
                                              random_state=808)
    scaler = StandardScaler().fit(x_tr)
    train = TensorDataset(torch.tensor(scaler.transform(x_tr), dtype=torch.float32), torch.tensor(y_tr))
    val = TensorDataset(torch.tensor(scaler.transform(x_va), dtype=torch.float32), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineNet(), DataLoader(train, batch_size=8, shuffle=True), DataLoader(val, batch_size=64))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f} "
          f"lr_body_end={trainer.optimizers[0].param_groups[0]['lr']:.1e}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
