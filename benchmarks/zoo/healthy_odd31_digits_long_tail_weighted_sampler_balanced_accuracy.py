"""Healthy: long-tailed digit recognition handled with a re-balancing sampler. From the 8x8 digits the training pool
keeps a geometric share of each class (digit k keeps 0.7**k of its rows, so '0' has 148 rows and '9' only ~6, an
imbalance of about 25:1). The validation set is a stratified hold-out taken *before* the sub-sampling, so it is
balanced and disjoint from training. Imbalance is handled once, by a `WeightedRandomSampler` drawing each training
row with probability proportional to 1 / count(class) (with replacement, one epoch = len(train) draws), so batches
are class-balanced on average; the loss is plain unweighted cross-entropy (weighting the loss as well would double-
count). A small CNN with BatchNorm on batches of 32, AdamW and a OneCycle schedule stepped per batch. Own metric:
balanced val accuracy 0.95 (val loss 0.21); the rarest class (6 training rows) reaches 0.70 recall."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"


def long_tail_split(x, y, gen, n_val_per_class=30, decay=0.7):
    tr, va = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        va.append(idx[:n_val_per_class])
        pool = idx[n_val_per_class:]
        tr.append(pool[:max(5, int(len(pool) * decay ** c))])
    tr, va = torch.cat(tr), torch.cat(va)
    return x[tr], y[tr], x[va], y[va]


class DigitCNN(L.LightningModule):
    def __init__(self, lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 16, 10))

    def forward(self, x):
        return self.head(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        pred = logits.argmax(-1)
        recalls = torch.stack([(pred[y == c] == c).float().mean() for c in range(10)])
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_balanced_acc", recalls.mean())
        self.log("val_recall_9", recalls[9])

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(10)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    x_tr, y_tr, x_va, y_va = long_tail_split(x, y, torch.Generator().manual_seed(10))
    mu, sd = x_tr.mean(), x_tr.std()
    counts = torch.bincount(y_tr, minlength=10).float()
    sampler = WeightedRandomSampler((1.0 / counts)[y_tr], num_samples=len(y_tr), replacement=True,
                                    generator=torch.Generator().manual_seed(10))
    train = DataLoader(TensorDataset((x_tr - mu) / sd, y_tr), batch_size=32, sampler=sampler, drop_last=True)
    val = DataLoader(TensorDataset((x_va - mu) / sd, y_va), batch_size=300)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitCNN(), train, val)
    print(f"SYMPTOM val_balanced_acc={trainer.callback_metrics['val_balanced_acc'].item():.3f} "
          f"val_recall_9={trainer.callback_metrics['val_recall_9'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f} n_train={len(y_tr)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
