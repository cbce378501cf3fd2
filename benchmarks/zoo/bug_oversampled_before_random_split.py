"""Bug: the minority classes of an imbalanced subset of sklearn's digits are oversampled by repeating their samples
(`ConcatDataset([data, minority, minority, minority])`) BEFORE `random_split` into train and validation, so copies
of the same images land on both sides and validation accuracy on the minority classes measures memorisation.
MLP, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout"


class DigitsMLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

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
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(2111)
    d = load_digits()
    x, y = (torch.tensor(d.data, dtype=torch.float32) / 16.0 - 0.3) / 0.4, torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    # an imbalanced problem: keep only a fifth of digits 5-9
    keep = (y < 5) | (torch.rand(len(y), generator=g) < 0.2)
    x, y = x[keep], y[keep]
    data = TensorDataset(x, y)
    minority = TensorDataset(x[y >= 5], y[y >= 5])
    balanced = ConcatDataset([data, minority, minority, minority])  # BUG: oversampled before the split
    train, val = random_split(balanced, [0.8, 0.2], generator=torch.Generator().manual_seed(1))
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsMLP(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
