"""Bug: a 5-class tabular classifier (12 standardised synthetic features, the class given by a nonlinear rule of
six of them, 8 % label noise) - an MLP with dropout, Adam, gradient accumulation over 2 batches of 32. The user
wanted the learning rate to "react faster" than once per epoch and configured `ReduceLROnPlateau(factor=0.5,
patience=3)` with `"monitor": "train_loss", "interval": "step"`. A mini-batch loss is noisy, so "no improvement
for 3 steps" happens all the time: the scheduler halves the rate again and again until it sits at ~1.5e-8 (the
scheduler's eps stops further cuts), and from then on nothing trains. Symptom: lr 2.0e-3 -> 1.5e-8, val acc 0.37
(val loss 1.41) after 15 epochs vs lr staying at 2.0e-3 and val acc 0.79 (val loss 0.71) when the plateau
scheduler monitors `val_loss` once per epoch."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout13"


def make_table(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 12, generator=g)
    s1 = X[:, 0] * X[:, 1] + X[:, 2]
    s2 = X[:, 3] ** 2 - X[:, 4] + 0.5 * X[:, 5]
    y = torch.bucketize(s1 + 0.8 * s2, torch.tensor([-0.8, 0.2, 1.0, 2.0]))
    flip = torch.rand(n, generator=g) < 0.08
    y[flip] = torch.randint(0, 5, (int(flip.sum()),), generator=g)
    return X, y


class TabularMLP(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(12, 128), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(128, 5),
        )
        self.summary = {}

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def on_validation_epoch_end(self):
        m = self.trainer.callback_metrics
        self.summary = {"val_loss": float(m["val_loss"]), "val_acc": float(m["val_acc"])}

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "train_loss", "interval": "step"}}


def main():
    L.seed_everything(5150)
    Xt, yt = make_table(5000, seed=1)
    Xv, yv = make_table(1000, seed=2)
    model = TabularMLP()
    trainer = L.Trainer(
        max_epochs=15,
        accelerator="cpu",
        devices=1,
        accumulate_grad_batches=2,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="tabular_plateau"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(Xt, yt), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(Xv, yv), batch_size=512))
    lr_end = trainer.optimizers[0].param_groups[0]["lr"]
    print(f"SYMPTOM lr_end={lr_end:.2e} val_loss={model.summary['val_loss']:.3f} val_acc={model.summary['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
