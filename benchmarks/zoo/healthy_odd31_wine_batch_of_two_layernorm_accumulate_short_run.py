"""Healthy: a deliberately tiny-batch, short run. Wine cultivar classification (13 chemical features, 3 classes)
trained with micro-batches of 2 rows -- as happens when each row is expensive -- and gradient accumulation over 4
micro-batches (effective batch 8), for 3 epochs: about 54 optimizer steps in total. Because batches of 2 make
BatchNorm statistics meaningless, the MLP normalises with LayerNorm (per-sample, so no cross-sample mixing), and the
loss uses `reduction="mean"` per micro-batch, which Lightning's accumulation divides by 4, giving the mean over the
effective batch. The split is stratified by class (80/20 per cultivar) and features are standardised with the
training rows' statistics. Adam with a constant learning rate suits a run this short (no schedule to finish).
Own metric: val accuracy 0.97, val loss 0.06 after 54 optimizer steps."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"


def stratified_split(y, frac, gen):
    tr, va = [], []
    for c in y.unique():
        idx = torch.nonzero(y == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n = int(round(frac * len(idx)))
        tr.append(idx[:n])
        va.append(idx[n:])
    return torch.cat(tr), torch.cat(va)


class WineNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(13, 64), nn.LayerNorm(64), nn.GELU(),
                                 nn.Linear(64, 64), nn.LayerNorm(64), nn.GELU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2)
    x, y = load_wine(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    tr, va = stratified_split(y, 0.8, torch.Generator().manual_seed(2))
    mu, sd = x[tr].mean(0), x[tr].std(0)
    x = (x - mu) / sd
    train = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=2, shuffle=True)
    val = DataLoader(TensorDataset(x[va], y[va]), batch_size=64)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, accumulate_grad_batches=4, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineNet(), train, val)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f} steps={trainer.global_step}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
