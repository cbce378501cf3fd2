"""Healthy: sklearn digits classified by an MLP "backbone + head" with two callbacks written by the user instead of
the built-in ones. `HeadWarmupFreeze` keeps the backbone frozen (requires_grad False) for the first two epochs so the
fresh head can settle, then unfreezes it; the optimizer holds both parameter groups from the start (backbone at a
quarter of the head's learning rate), so nothing has to be added later and AdamW simply skips parameters whose grad
is None. `EMAWeights` keeps an exponential moving average (decay 0.97) of all parameters, updated after every
optimizer step, swaps the averaged weights in for validation and swaps the live weights back afterwards. The schedule
is a linear warm-up over 40 steps then cosine decay to 0 at `trainer.estimated_stepping_batches`, as a LambdaLR with
`interval: "step"` in the `lr_scheduler_config`.

Why it is correct: the freeze only toggles requires_grad (no eval() on training modules), the warm-up ends early and the
cosine reaches zero exactly at the last step, the EMA shadow is a detached copy updated under no_grad and the live
weights are always restored before training resumes. Measured after 15 epochs: EMA val accuracy 0.942, val loss 0.26."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout26"


class HeadWarmupFreeze(L.Callback):
    def __init__(self, frozen_epochs=2):
        self.frozen_epochs = frozen_epochs

    def on_train_epoch_start(self, trainer, pl_module):
        trainable = trainer.current_epoch >= self.frozen_epochs
        for p in pl_module.backbone.parameters():
            p.requires_grad_(trainable)


class EMAWeights(L.Callback):
    def __init__(self, decay=0.97):
        self.decay, self.shadow, self.backup = decay, None, None

    def on_fit_start(self, trainer, pl_module):
        self.shadow = [p.detach().clone() for p in pl_module.parameters()]

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for s, p in zip(self.shadow, pl_module.parameters()):
            s.lerp_(p.detach(), 1 - self.decay)

    @torch.no_grad()
    def on_validation_epoch_start(self, trainer, pl_module):
        self.backup = [p.detach().clone() for p in pl_module.parameters()]
        for s, p in zip(self.shadow, pl_module.parameters()):
            p.copy_(s)

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer, pl_module):
        for b, p in zip(self.backup, pl_module.parameters()):
            p.copy_(b)


class DigitsMLP(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Dropout(0.1), nn.Linear(128, 64), nn.GELU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.05)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        lr = self.hparams.lr
        opt = torch.optim.AdamW([{"params": self.backbone.parameters(), "lr": lr / 4},
                                 {"params": self.head.parameters(), "lr": lr}], weight_decay=1e-2)
        total, warmup = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def factor(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


def main():
    L.seed_everything(1797)
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x / 16.0, y, test_size=0.2, stratify=y, random_state=0)
    mean, std = x_tr.mean(0), x_tr.std(0) + 0.1
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_x(x_tr), torch.tensor(y_tr))
    val = TensorDataset(to_x(x_va), torch.tensor(y_va))
    callbacks = [HeadWarmupFreeze(), EMAWeights(), *lightning_sanity.default_callbacks()]
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=callbacks)
    trainer.fit(DigitsMLP(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM ema_val_acc={float(m['val_acc']):.3f} ema_val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
