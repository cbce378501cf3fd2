"""Bug (train/validation overlap): a LightningDataModule for a small labelled budget of digits (600 random images;
the remaining 1197 are an untouched test set). Its `_indices(stage)` helper draws `torch.randperm` and cuts off the
first 25 % for validation, but it is called separately from `train_dataloader()` and `val_dataloader()`, each call a
new permutation of the global RNG: the two subsets are independent draws, so ~75 % of the validation images are
also training images. A small BatchNorm CNN trained 25 epochs memorises its training set. Symptom: val acc 1.000
while the held-out test acc is 0.974; with the permutation drawn once in `setup` (the fix) val acc 0.973, test
0.974: the leaky validation flatters the model."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout7"


class DigitsBudgetDataModule(L.LightningDataModule):
    def __init__(self, n_labelled=600, val_fraction=0.25, batch_size=32):
        super().__init__()
        self.n_labelled, self.val_fraction, self.batch_size = n_labelled, val_fraction, batch_size

    def setup(self, stage=None):
        d = load_digits()
        x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
        x = (x - 0.305) / 0.39
        y = torch.tensor(d.target)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        lab, rest = order[:self.n_labelled], order[self.n_labelled:]
        self.labelled = TensorDataset(x[lab], y[lab])
        self.test = TensorDataset(x[rest], y[rest])

    def _indices(self, stage):
        perm = torch.randperm(len(self.labelled))
        n_val = int(self.val_fraction * len(perm))
        return perm[n_val:].tolist() if stage == "train" else perm[:n_val].tolist()

    def train_dataloader(self):
        return DataLoader(Subset(self.labelled, self._indices("train")), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(Subset(self.labelled, self._indices("val")), batch_size=256)


class SmallCNN(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 10))

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
    L.seed_everything(37)
    dm = DigitsBudgetDataModule()
    model = SmallCNN()
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    model.eval()
    with torch.no_grad():
        xt, yt = dm.test.tensors
        test_acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f} test_acc={test_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
