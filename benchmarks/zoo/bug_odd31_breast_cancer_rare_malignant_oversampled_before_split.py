"""Bug: rare-positive screening on the breast-cancer data. To make the task look like a screening population the script
keeps only 40 of the malignant cases (about 10% positives), then "handles" the imbalance by random oversampling:
every malignant row is repeated 8 times. The mistake is the order: the oversampled table is shuffled and split 80/20
*afterwards*, so every malignant validation row has exact copies in the training set. The classifier (a small MLP
with BCE-with-logits, features standardised on the training rows) trains normally, and validation looks excellent
because the positives it is scored on were memorised. Measured: buggy val_loss 0.024 (val_pos_recall 1.00, all 64
malignant rows of the 136 val rows have copies in training); splitting first and oversampling only the training part
gives val_loss 0.060 (val_pos_recall 1.00 on the ~8 untouched malignant val rows): the buggy score is optimistic by
more than 2x."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout31"


def build_splits(gen):
    x, y = load_breast_cancer(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y == 0, dtype=torch.float32)  # 1 = malignant
    pos = torch.nonzero(y == 1).squeeze(1)
    neg = torch.nonzero(y == 0).squeeze(1)
    keep = torch.cat([neg, pos[torch.randperm(len(pos), generator=gen)[:40]]])
    x, y = x[keep], y[keep]
    minority = torch.nonzero(y == 1).squeeze(1)
    idx = torch.cat([torch.arange(len(y)), minority.repeat(7)])  # oversample positives x8
    x, y = x[idx], y[idx]
    perm = torch.randperm(len(y), generator=gen)
    n_tr = int(0.8 * len(y))
    tr, va = perm[:n_tr], perm[n_tr:]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    return ((x[tr] - mu) / sd, y[tr]), ((x[va] - mu) / sd, y[va])


class Screener(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        hit = ((logits > 0).float() == y) & (y == 1)
        self.log("val_pos_recall", hit.float().sum() / y.sum().clamp(min=1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(7)
    (x_tr, y_tr), (x_va, y_va) = build_splits(torch.Generator().manual_seed(7))
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x_va, y_va), batch_size=256)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Screener(), train, val)
    print(f"SYMPTOM val_pos_recall={trainer.callback_metrics['val_pos_recall'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
