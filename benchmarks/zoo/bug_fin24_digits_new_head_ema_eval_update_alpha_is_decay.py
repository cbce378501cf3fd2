"""Bug: transfer on scikit-learn digits with EMA weights for evaluation. An MLP backbone is pretrained (short plain
PyTorch phase) on the digits 0-4; for the fine-tune on digits 5-9 its head is re-initialised for the new label set, the
backbone trains with a 10x lower learning rate than the head (AdamW parameter groups, no weight decay on biases), and
a hand-written exponential moving average of the weights (decay 0.99, updated after every optimizer step) is what
validation runs, as is common practice for fine-tuning.

The EMA update is written `ema.mul_(decay).add_(p, alpha=decay)` instead of `alpha=1 - decay`. The averaged weights are
no longer an average: they converge to decay / (1 - decay) = 99 times the live weights, so the EMA network's logits are
scaled by orders of magnitude. Training (live weights) is perfectly normal and its loss falls; validation on the EMA
copy reports enormous, growing cross-entropy from over-confident logits. Symptom: final val CE 2.1e4 (val acc 0.953, the
argmax mostly survives the scaling) while train CE is 0.119; with `alpha=1 - decay` val CE 0.199, val acc 0.949."""

import copy

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence", "weight-growth"}
SPLIT = "heldout24"


class Net(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, n_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


class FineTuner(L.LightningModule):
    def __init__(self, net, decay=0.99):
        super().__init__()
        self.net = net
        self.net.head.reset_parameters()
        self.ema = copy.deepcopy(net).requires_grad_(False)
        self.decay = decay

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx):
        for e, p in zip(self.ema.parameters(), self.net.parameters()):
            e.mul_(self.decay).add_(p, alpha=self.decay)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.ema(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        groups = [
            {"params": [p for p in self.net.backbone.parameters() if p.ndim > 1], "lr": 3e-4, "weight_decay": 1e-2},
            {"params": [p for p in self.net.backbone.parameters() if p.ndim == 1], "lr": 3e-4, "weight_decay": 0.0},
            {"params": self.net.head.parameters(), "lr": 3e-3, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups)


def main():
    L.seed_everything(2404)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 8.0 - 1.0, dtype=torch.float32)
    y = torch.tensor(y)
    low, high = y < 5, y >= 5

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(net(X[low]), y[low]).backward()
        opt.step()

    Xh, yh = X[high], y[high] - 5
    perm = torch.as_tensor(np.random.default_rng(1).permutation(len(Xh)))
    tr, va = perm[:600], perm[600:]
    model = FineTuner(net)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(Xh[tr], yh[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(Xh[va], yh[va]), batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.4g} val_acc={float(m['val_acc']):.3f} "
          f"train_loss={float(m['train_loss_epoch']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
