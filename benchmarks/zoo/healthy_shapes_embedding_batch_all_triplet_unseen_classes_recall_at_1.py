"""Healthy: deep metric learning on synthetic shape images (8 shape families with random size, position, thickness
and noise). The embedding CNN (L2-normalised 32-d output) is trained on families 0-5 with a batch-all triplet loss
(margin 0.2, averaged over the triplets that are still active) on class-balanced P x K batches; validation measures
retrieval on the two families never seen in training (recall@1 among the val images, leave-one-out) and the same
triplet loss on them. Final unseen-class recall@1 about 0.99."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"
SIZE = 16


def family_images(n, families, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    y = torch.tensor(families)[torch.randint(0, len(families), (n,), generator=g)]
    x = torch.zeros(n, 1, SIZE, SIZE)
    for i in range(n):
        r = 3.5 + 2.5 * torch.rand(1, generator=g).item()
        cy, cx = (r + (SIZE - 2 * r) * torch.rand(2, generator=g)).tolist()
        dy, dx = yy - cy, xx - cx
        d = torch.sqrt(dy ** 2 + dx ** 2)
        th = math.atan2(1, 1)
        k = int(y[i])
        m = [d <= r, (d <= r) & (d >= r - 1.5), (dy.abs() <= r) & (dx.abs() <= r),
             ((dy.abs() <= r) & (dx.abs() <= r)) & ~((dy.abs() <= r - 1.5) & (dx.abs() <= r - 1.5)),
             (dy.abs() + dx.abs() <= r), ((dy.abs() <= 1) | (dx.abs() <= 1)) & (d <= r),
             ((dx * math.cos(th) + dy * math.sin(th)).abs() <= 1) & (d <= r), (dy.abs() <= 1) & (dx.abs() <= r)][k]
        x[i, 0] = m.float()
    return (x + 0.25 * torch.randn(x.shape, generator=g) - 0.25) / 0.5, y


class PKSampler(Sampler):
    def __init__(self, labels, p, k, batches, seed):
        self.labels, self.p, self.k, self.batches, self.seed = labels, p, k, batches, seed
        self.classes = labels.unique()

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        self.seed += 1
        for _ in range(self.batches):
            batch = []
            for c in self.classes[torch.randperm(len(self.classes), generator=g)[:self.p]]:
                idx = (self.labels == c).nonzero().squeeze(1)
                batch += idx[torch.randint(0, len(idx), (self.k,), generator=g)].tolist()
            yield batch

    def __len__(self):
        return self.batches


def batch_all_triplet(emb, y, margin):
    dist = torch.cdist(emb, emb)
    same = y[:, None] == y[None]
    eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
    valid = (same & ~eye)[:, :, None] & (~same)[:, None, :]
    losses = F.relu(dist[:, :, None] - dist[:, None, :] + margin)[valid]
    active = losses > 1e-8
    return losses[active].mean() if active.any() else losses.sum() * 0.0, active.float().mean()


class Embedder(L.LightningModule):
    def __init__(self, dim=32, margin=0.2, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, dim))

    def forward(self, x):
        return F.normalize(self.net(x), dim=-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss, frac = batch_all_triplet(self(x), y, self.hparams.margin)
        self.log("train_loss", loss)
        self.log("active_triplets", frac)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        emb = self(x)
        sim = emb @ emb.T
        sim.fill_diagonal_(-2.0)
        self.log("val_recall_at_1", (y[sim.argmax(1)] == y).float().mean())
        self.log("val_loss", batch_all_triplet(emb, y, self.hparams.margin)[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)


def main():
    L.seed_everything(6060)
    xtr, ytr = family_images(1800, list(range(6)), seed=1)
    xva, yva = family_images(300, [6, 7], seed=2)
    sampler = PKSampler(ytr, p=6, k=8, batches=40, seed=0)
    train_dl = DataLoader(TensorDataset(xtr, ytr), batch_sampler=sampler)
    val_dl = DataLoader(TensorDataset(xva, yva), batch_size=300)
    trainer = L.Trainer(max_epochs=6, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(Embedder(), train_dl, val_dl)
    print(f"SYMPTOM unseen_recall_at_1={trainer.callback_metrics['val_recall_at_1']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
