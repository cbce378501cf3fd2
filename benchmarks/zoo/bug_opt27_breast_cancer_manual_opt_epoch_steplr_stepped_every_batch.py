"""Bug: a breast-cancer MLP moved to manual optimisation (to accumulate gradients over two micro-batches by hand and
clip them). The recipe's `StepLR(step_size=5, gamma=0.5)` is a per-epoch schedule ("halve the LR every 5 epochs"),
but with `automatic_optimization = False` Lightning no longer steps schedulers, and the author put
`sch.step()` next to `opt.step()` inside `training_step`. The LR is therefore halved every 5 optimizer steps:
with ~14 optimizer steps per epoch it is below 1e-3 of its start within the second epoch and ~1e-50 by the end.
Nothing crashes; the first few steps move the model off its initialisation, then training simply freezes
(the loss curve flattens early and looks "converged").
Measured (own metric): buggy val loss 0.596 / acc 0.921; fixed (scheduler stepped in `on_train_epoch_end`)
val loss 0.066 / acc 0.982."""

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
SPLIT = "heldout27"


class ManualAccumMLP(L.LightningModule):
    def __init__(self, lr=0.01, accumulate=2):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt = self.optimizers()
        sch = self.lr_schedulers()
        loss = F.cross_entropy(self(x), y)
        self.manual_backward(loss / self.hparams.accumulate)
        if (batch_idx + 1) % self.hparams.accumulate == 0:
            self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            opt.step()
            opt.zero_grad()
            sch.step()
        self.log("train_loss", loss)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        return [opt], [sched]


def main():
    L.seed_everything(2727)
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=3, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    train_ds = TensorDataset(torch.tensor(scaler.transform(X_tr), dtype=torch.float32), torch.tensor(y_tr))
    val_ds = TensorDataset(torch.tensor(scaler.transform(X_va), dtype=torch.float32), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ManualAccumMLP(), DataLoader(train_ds, batch_size=16, shuffle=True, drop_last=True),
                DataLoader(val_ds, batch_size=128))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
