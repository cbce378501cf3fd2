"""Healthy: a wine MLP trained with manual optimisation and two optimizers, the way people do it when the body and
the head want different optimizers: SGD with momentum for the feature body, Adam for the linear head. Each
`training_step` computes the loss once, `manual_backward`s it, then for each optimizer it toggles it, clips its own
parameters' gradients with `self.clip_gradients`, steps, zero-grads and untoggles. The body's cosine scheduler is a
per-epoch schedule, so it is stepped once in `on_train_epoch_end` (manual optimisation never steps schedulers by
itself). Standardisation is fitted on the training split only. All parameters are covered by exactly one optimizer.
Own metric: val acc 1.000, val loss 0.008."""

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
SPLIT = "heldout27"


class TwoOptimizerWine(L.LightningModule):
    def __init__(self, hidden=48, max_epochs=30):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.body = nn.Sequential(nn.Linear(13, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, hidden),
                                  nn.ReLU())
        self.head = nn.Linear(hidden, 3)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        opt_body, opt_head = self.optimizers()
        self.manual_backward(loss)
        for opt in (opt_body, opt_head):
            self.toggle_optimizer(opt)
            self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            opt.step()
            opt.zero_grad()
            self.untoggle_optimizer(opt)
        self.log("train_loss", loss, prog_bar=False)

    def on_train_epoch_end(self):
        self.lr_schedulers().step()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt_body = torch.optim.SGD(self.body.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        opt_head = torch.optim.Adam(self.head.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_body, T_max=self.hparams.max_epochs, eta_min=1e-3)
        return [opt_body, opt_head], [sched]


def main():
    L.seed_everything(27)
    X, y = load_wine(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    train_ds = TensorDataset(torch.tensor(scaler.transform(X_tr), dtype=torch.float32), torch.tensor(y_tr))
    val_ds = TensorDataset(torch.tensor(scaler.transform(X_va), dtype=torch.float32), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TwoOptimizerWine(max_epochs=30), DataLoader(train_ds, batch_size=16, shuffle=True),
                DataLoader(val_ds, batch_size=64))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
