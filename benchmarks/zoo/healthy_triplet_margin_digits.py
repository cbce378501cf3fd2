"""Healthy: metric learning on sklearn digits with `nn.TripletMarginLoss(margin=0.5)`: the dataset yields
(anchor, positive of the same class, negative of another class) triplets drawn with a seeded generator; the
embedding net is an MLP with L2-normalised 16-d output. Validation: nearest-class-centroid accuracy of the
embeddings. Adam with CosineAnnealingLR per epoch."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
EPOCHS = 6


class Triplets(Dataset):
    def __init__(self, x, y, seed):
        g = torch.Generator().manual_seed(seed)
        by_class = [torch.nonzero(y == c).squeeze(1) for c in range(10)]
        self.items = []
        for i in range(len(y)):
            c = int(y[i])
            pos = by_class[c][torch.randint(len(by_class[c]), (1,), generator=g)]
            other = (c + int(torch.randint(1, 10, (1,), generator=g))) % 10
            neg = by_class[other][torch.randint(len(by_class[other]), (1,), generator=g)]
            self.items.append((x[i], x[pos].squeeze(0), x[neg].squeeze(0)))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class Embedder(L.LightningModule):
    def __init__(self, x_ref, y_ref):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 16))
        self.loss_fn = nn.TripletMarginLoss(margin=0.5)
        self.register_buffer("x_ref", x_ref)
        self.register_buffer("y_ref", y_ref)

    def forward(self, x):
        return F.normalize(self.net(x), dim=-1)

    def training_step(self, batch, batch_idx):
        a, p, n = batch
        loss = self.loss_fn(self(a), self(p), self(n))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        ref = self(self.x_ref)
        centroids = torch.stack([ref[self.y_ref == c].mean(0) for c in range(10)])
        self.log("val_centroid_acc", (torch.cdist(self(x), centroids).argmin(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)]


def main():
    L.seed_everything(1822)
    d = load_digits()
    x, y = (torch.tensor(d.data, dtype=torch.float32) / 16.0 - 0.3) / 0.4, torch.tensor(d.target)
    xtr, ytr = x[:1400], y[:1400]
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Embedder(xtr, ytr), DataLoader(Triplets(xtr, ytr, 0), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[1400:], y[1400:]), batch_size=400))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
