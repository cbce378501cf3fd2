"""Healthy: metric learning on the digits with online semi-hard triplet mining (FaceNet style). A PK batch sampler
draws P=8 classes x K=4 images per batch, so every anchor has positives and negatives in its batch. Embeddings live
on the unit sphere; for every anchor-positive pair the miner picks a semi-hard negative (farther than the positive
but inside the margin) and falls back to the hardest negative farther than the positive (or the closest one when
none is), the triplet loss is averaged over all anchor-positive pairs. The sampler is seeded and re-draws every
epoch; validation is on held-out images with a full-batch leave-one-out recall@1 and the same mined loss, which
is fine because validation batches are not used for updates. Distances use a safe squared-distance clamp before the
square root so that the diagonal's zero distance never yields an infinite gradient.
Own metric (seed 71, 10 epochs): val recall@1 0.986, val mined triplet loss 0.019."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout27"


class PKSampler(Sampler):
    def __init__(self, labels, p=8, k=4, n_batches=40, seed=0):
        self.by_class = [torch.nonzero(labels == c).flatten() for c in labels.unique()]
        self.p, self.k, self.n_batches = p, k, n_batches
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self):
        return self.n_batches

    def __iter__(self):
        for _ in range(self.n_batches):
            classes = torch.randperm(len(self.by_class), generator=self.g)[: self.p]
            batch = []
            for c in classes.tolist():
                pool = self.by_class[c]
                batch += pool[torch.randperm(len(pool), generator=self.g)[: self.k]].tolist()
            yield batch


def pairwise_dist(z):
    sq = (z[:, None, :] - z[None, :, :]).pow(2).sum(-1)
    return sq.clamp_min(1e-12).sqrt()


def semihard_triplet_loss(z, y, margin=0.2):
    d = pairwise_dist(z)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    a_idx, p_idx = torch.nonzero(same & ~eye, as_tuple=True)
    d_ap = d[a_idx, p_idx]
    d_an = d[a_idx].masked_fill(same[a_idx], float("inf"))  # (pairs, B), positives excluded
    farther = d_an > d_ap[:, None]
    semihard = farther & (d_an < d_ap[:, None] + margin)
    pick_semi = d_an.masked_fill(~semihard, float("inf")).min(1).values
    pick_far = d_an.masked_fill(~farther, float("inf")).min(1).values
    pick_any = d_an.min(1).values
    d_neg = torch.where(semihard.any(1), pick_semi, torch.where(farther.any(1), pick_far, pick_any))
    return F.relu(d_ap - d_neg + margin).mean()


class TripletEmbedder(L.LightningModule):
    def __init__(self, dim=32, lr=2e-3, margin=0.2):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, dim))

    def forward(self, x):
        return F.normalize(self.net(x), dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = semihard_triplet_loss(self(x), y, self.hparams.margin)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        z = self(x)
        d = pairwise_dist(z).fill_diagonal_(float("inf"))
        self.log("val_loss", semihard_triplet_loss(z, y, self.hparams.margin))
        self.log("val_recall_at_1", (y[d.argmin(1)] == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(71)
    X, y = load_digits(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X / 16.0, y, test_size=0.2, random_state=7, stratify=y)
    train = TensorDataset(torch.tensor(X_tr, dtype=torch.float32), torch.tensor(y_tr))
    val = TensorDataset(torch.tensor(X_va, dtype=torch.float32), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TripletEmbedder(), DataLoader(train, batch_sampler=PKSampler(torch.tensor(y_tr), seed=1)),
                DataLoader(val, batch_size=len(val)))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_recall_at_1={m['val_recall_at_1'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
