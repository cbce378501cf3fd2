"""Healthy: churn classifier on a synthetic retail customer table (1200 customers, 14 behavioural columns, churn
drawn from a logistic rule with an interaction term, minority class 42%). The split is stratified by hand: each
class's row ids are permuted once with a seeded generator and cut 80/20, so the two index sets are disjoint by
construction (and asserted). The scaler statistics come from the training rows only, the loss is class-weighted with
weights from the training labels, and the small MLP with dropout and weight decay is stopped at 25 epochs, before it
starts memorising the label noise. Validation accuracy 0.84 / loss 0.36 (majority-class baseline 0.58 / 0.68)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout34"


def customer_table(n=1200, d=14, seed=34):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g) / d ** 0.5
    logit = 1.5 * (x @ w) + 0.8 * x[:, 0] * x[:, 1] - 0.3
    churn = (torch.rand(n, generator=g) < torch.sigmoid(2.0 * logit)).long()
    return x, churn


def stratified_split(y, val_frac=0.2, seed=34):
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in y.unique():
        ids = (y == c).nonzero().squeeze(1)
        ids = ids[torch.randperm(len(ids), generator=g)]
        n_val = int(round(val_frac * len(ids)))
        val.append(ids[:n_val])
        train.append(ids[n_val:])
    train, val = torch.cat(train), torch.cat(val)
    assert not set(train.tolist()) & set(val.tolist())
    return train, val


class ChurnMLP(L.LightningModule):
    def __init__(self, class_weight, d=14, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("class_weight", class_weight)
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weight)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)


def main():
    L.seed_everything(34)
    x, y = customer_table()
    train_idx, val_idx = stratified_split(y)
    x = (x - x[train_idx].mean(0)) / x[train_idx].std(0)
    counts = torch.bincount(y[train_idx], minlength=2).float()
    model = ChurnMLP(class_weight=counts.sum() / (2 * counts))
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
