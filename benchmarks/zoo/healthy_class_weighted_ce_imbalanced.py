"""Healthy: an imbalanced 4-class problem (class frequencies about 70/20/7/3 %) trained with cross-entropy weighted
by inverse class frequency (computed on the training split), as recommended for imbalanced data. Synthetic
Gaussian clusters with overlapping tails, MLP, Adam; validation reports balanced accuracy."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
PRIOR = torch.tensor([0.70, 0.20, 0.07, 0.03])
CENTERS = 2.0 * torch.randn(4, 10, generator=torch.Generator().manual_seed(21))


def clusters(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(PRIOR, n, replacement=True, generator=g)
    return CENTERS[y] + 1.5 * torch.randn(n, 10, generator=g), y


class WeightedClassifier(L.LightningModule):
    def __init__(self, class_weight):
        super().__init__()
        self.register_buffer("class_weight", class_weight)
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weight)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x).argmax(1)
        recall = torch.stack([(pred[y == c] == c).float().mean() for c in range(4)])
        self.log("val_balanced_acc", recall.nanmean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(2022)
    x, y = clusters(3000, 0)
    counts = torch.bincount(y, minlength=4).float()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WeightedClassifier(counts.sum() / (4 * counts)),
                DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*clusters(1000, 1)), batch_size=1000))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
