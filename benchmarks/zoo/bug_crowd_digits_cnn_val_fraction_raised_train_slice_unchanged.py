"""Bug: a small CNN on sklearn digits whose labels come from a crowd-sourcing round (every image was labelled by one
worker, about 30 % of the labels are wrong; the noise is part of the data, the honest ceiling on val acc is the
clean accuracy times 0.7). The split is written by hand on a shuffled index: it used to be 80/20; the user raised
the validation share to 30 % by editing `n_val` and slicing the validation rows from the end, but left the
training slice `perm[:int(0.8 * n)]` alone. A third of the validation images are also training images, and the
CNN, trained long enough to fit the noisy labels, recites their (noisy) labels.
Symptom: val acc 0.74 vs 0.56 with disjoint slices (`perm[:n - n_val]`)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout16"


def crowd_labels(y, g, error_rate=0.3):
    noisy = y.clone()
    flip = torch.rand(len(y), generator=g) < error_rate
    noisy[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g)
    return noisy


class DigitCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(77)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    g = torch.Generator().manual_seed(3)
    y = crowd_labels(torch.tensor(d.target), g)
    n = len(x)
    perm = torch.randperm(n, generator=g)
    n_val = int(0.3 * n)
    train_idx = perm[:int(0.8 * n)]
    val_idx = perm[n - n_val:]
    train_dl = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=32, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=256)
    trainer = L.Trainer(max_epochs=25, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(DigitCNN(), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
