"""Healthy: wine cultivar classification (13 features, 3 classes) with manual optimization and alternating updates,
the way block-coordinate / "head first, then body" recipes are written. The encoder (13-64-32 MLP with LayerNorm) and
the linear head have separate optimizers: SGD with momentum for the encoder, Adam for the head. Each optimizer step
accumulates gradients over two micro-batches of 16 (loss divided by 2); even optimizer steps update the head, odd
ones the encoder, and the other block's gradients are cleared with `toggle_optimizer`. Gradients are clipped with
`self.clip_gradients(..., gradient_clip_val=1.0)` before each step, and both StepLR schedulers are stepped once per
epoch in `on_train_epoch_end` (manual optimization does not step them for you).

Why it is correct: `zero_grad` happens once per accumulated step, after `step()`; every parameter belongs to exactly one
optimizer and each block is updated every other step; the loss is divided by the number of micro-batches; the
standardizer is fitted on the training split only; schedulers are stepped in epochs as they were configured. Measured:
val accuracy 1.000, val loss 0.022."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout26"
ACCUMULATE = 2


class AlternatingWineNet(L.LightningModule):
    def __init__(self, lr_encoder=0.05, lr_head=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.encoder = nn.Sequential(nn.Linear(13, 64), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        opts = self.optimizers()
        opt = opts[(batch_idx // ACCUMULATE) % 2]
        self.toggle_optimizer(opt)
        loss = F.cross_entropy(self(x), y)
        self.manual_backward(loss / ACCUMULATE)
        if (batch_idx + 1) % ACCUMULATE == 0:
            self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            opt.step()
            opt.zero_grad()
        self.untoggle_optimizer(opt)
        self.log("train_loss", loss, on_step=False, on_epoch=True)

    def on_train_epoch_end(self):
        for sched in self.lr_schedulers():
            sched.step()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt_head = torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr_head)
        opt_enc = torch.optim.SGD(self.encoder.parameters(), lr=self.hparams.lr_encoder, momentum=0.9)
        scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.5) for o in (opt_head, opt_enc)]
        return [opt_head, opt_enc], scheds


def main():
    L.seed_everything(178)
    x, y = load_wine(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, stratify=y, random_state=3)
    mean, std = x_tr.mean(0), x_tr.std(0)
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_x(x_tr), torch.tensor(y_tr))
    val = TensorDataset(to_x(x_va), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AlternatingWineNet(), DataLoader(train, batch_size=16, shuffle=True, drop_last=True),
                DataLoader(val, batch_size=64))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
