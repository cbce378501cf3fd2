"""Healthy: multi-label tagging of synthetic tabular records (20 standardised features, 6 independent tags, each
present when a non-linear score of a few features passes a threshold; a seeded torch.Generator). MLP with 6 logits,
`BCEWithLogitsLoss`, SGD with Nesterov momentum and OneCycleLR(max_lr=0.1, epochs, steps_per_epoch=len(train
loader)) stepped per batch. Own metric: val micro-F1 0.92, val loss 0.16 (a constant prior gives 0.68)."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout3"


def make_records(n, gen):
    x = torch.randn(n, 20, generator=gen)
    w = torch.randn(20, 6, generator=torch.Generator().manual_seed(99))
    score = x @ w * 0.6 + 0.8 * x[:, :6] * x[:, 6:12] + 0.3 * torch.randn(n, 6, generator=gen)
    return x, (score > 0.5).float()


class Tagger(L.LightningModule):
    def __init__(self, steps_per_epoch, epochs=10, max_lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 6))
        self.loss_fn = nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        pred = (logits > 0).float()
        tp = (pred * y).sum()
        f1 = 2 * tp / (pred.sum() + y.sum()).clamp_min(1)
        self.log("val_loss", self.loss_fn(logits, y))
        self.log("val_f1", f1)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.max_lr, momentum=0.9, nesterov=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr, epochs=self.hparams.epochs,
                                                    steps_per_epoch=self.hparams.steps_per_epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(23)
    gen = torch.Generator().manual_seed(23)
    x_tr, y_tr = make_records(2560, gen)
    x_va, y_va = make_records(640, gen)
    train_set = TensorDataset(x_tr, y_tr)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    model = Tagger(steps_per_epoch=len(train_loader), epochs=10)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_loader, DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    p = y_tr.mean(0)
    prior_loss = -(p * p.log() + (1 - p) * (1 - p).log()).mean().item()
    m = trainer.callback_metrics
    print(f"val_f1={m['val_f1'].item():.3f} val_loss={m['val_loss'].item():.3f} prior_loss={prior_loss:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
