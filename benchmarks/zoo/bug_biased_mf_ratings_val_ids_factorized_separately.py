"""Bug: explicit-feedback biased matrix factorisation (global mean + user/item biases + 16-d dot product, MSE,
Adam with weight decay) on a ratings log whose users and items carry raw catalogue ids (6-digit numbers). The
ratings are split at random, then each split is turned into model indices by its own
`np.unique(raw_ids, return_inverse=True)` call inside the Dataset ("compact ids"). The validation split has a
slightly different set of users (a few have no held-out rating), so from the first missing user on its compact
index k names a different person than the training index k: validation predictions are made with other users'
factors. Training RMSE falls normally; validation
RMSE ends worse than predicting the global mean for every rating.
Symptom: val RMSE 1.30 (global-mean baseline 1.19) vs 0.76 when validation ids go through the training id map."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout15"
N_USERS, N_ITEMS = 400, 250


def make_ratings(g):
    """(raw_user_id, raw_item_id, rating 1-5) from a rank-4 taste model plus biases, 40 ratings per user."""
    user_raw = torch.randperm(900000, generator=g)[:N_USERS] + 100000
    item_raw = torch.randperm(900000, generator=g)[:N_ITEMS] + 100000
    pu, qi = torch.randn(N_USERS, 4, generator=g), torch.randn(N_ITEMS, 4, generator=g)
    bu, bi = 0.4 * torch.randn(N_USERS, generator=g), 0.6 * torch.randn(N_ITEMS, generator=g)
    rows = []
    for u in range(N_USERS):
        items = torch.randperm(N_ITEMS, generator=g)[:40]
        r = 3.5 + bu[u] + bi[items] + 0.5 * (pu[u] * qi[items]).sum(1) + 0.5 * torch.randn(40, generator=g)
        r = r.round().clamp(1, 5)
        rows += [(int(user_raw[u]), int(item_raw[i]), float(x)) for i, x in zip(items, r)]
    return np.array(rows)


class RatingsDataset(Dataset):
    def __init__(self, table):
        # compact the raw ids into 0..n-1 for the embedding tables
        _, self.users = np.unique(table[:, 0], return_inverse=True)
        _, self.items = np.unique(table[:, 1], return_inverse=True)
        self.ratings = table[:, 2].astype(np.float32)

    def __len__(self):
        return len(self.ratings)

    def __getitem__(self, i):
        return int(self.users[i]), int(self.items[i]), self.ratings[i]


class BiasedMF(L.LightningModule):
    def __init__(self, n_users, n_items, mean, d=16, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.P, self.Q = nn.Embedding(n_users, d), nn.Embedding(n_items, d)
        self.bu, self.bi = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        for e in (self.P, self.Q):
            nn.init.normal_(e.weight, std=0.1)
        for e in (self.bu, self.bi):
            nn.init.zeros_(e.weight)

    def forward(self, u, i):
        return self.hparams.mean + self.bu(u)[:, 0] + self.bi(i)[:, 0] + (self.P(u) * self.Q(i)).sum(1)

    def training_step(self, batch, batch_idx):
        u, i, r = batch
        loss = F.mse_loss(self(u, i), r)
        self.log("train_rmse", loss.sqrt())
        return loss

    def validation_step(self, batch, batch_idx):
        u, i, r = batch
        self.log("val_rmse", F.mse_loss(self(u, i), r).sqrt(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(2024)
    table = make_ratings(torch.Generator().manual_seed(2024))
    perm = np.random.default_rng(0).permutation(len(table))
    n_val = len(table) // 10
    train_ds, val_ds = RatingsDataset(table[perm[n_val:]]), RatingsDataset(table[perm[:n_val]])
    mean = float(train_ds.ratings.mean())
    model = BiasedMF(int(train_ds.users.max()) + 1, int(train_ds.items.max()) + 1, mean)
    trainer = L.Trainer(max_epochs=10, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="biased_mf"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, DataLoader(train_ds, batch_size=256, shuffle=True), DataLoader(val_ds, batch_size=1024))
    model.eval()
    with torch.no_grad():
        u, i = torch.as_tensor(val_ds.users), torch.as_tensor(val_ds.items)
        r = torch.as_tensor(val_ds.ratings)
        rmse = F.mse_loss(model(u, i), r).sqrt().item()
    print(f"SYMPTOM val_rmse={rmse:.3f} global_mean_baseline={float(np.sqrt(((val_ds.ratings - mean) ** 2).mean())):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
