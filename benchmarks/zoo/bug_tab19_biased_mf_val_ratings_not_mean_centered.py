"""Bug: explicit-feedback matrix factorisation (user/item embeddings + user/item biases, ratings 1-5) trained on
residuals from the global mean, the usual baseline-predictor trick: `RatingsDataset(..., offset=global_mean)` yields
`rating - offset`, and `predict()` adds the mean back. The validation dataset is built with the same class but the
`offset=` argument was left out (it defaults to 0.0, for the test-time path where raw ratings are wanted), so the
validation targets are raw 1-5 ratings while the model is trained to output residuals around 0. Training RMSE falls
normally; validation RMSE sits far above what predicting the mean would give, and ReduceLROnPlateau and early
stopping key off that number.
Symptom: val RMSE 3.66 (train RMSE 0.40) vs 0.74 with `offset=global_mean` on the validation set too (predicting
the global mean scores 1.02)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout19"
N_USERS, N_ITEMS, RANK = 400, 250, 4


def simulate_ratings(n_ratings, seed):
    g = torch.Generator().manual_seed(seed)
    pu = torch.randn(N_USERS, RANK, generator=g) * 0.6
    qi = torch.randn(N_ITEMS, RANK, generator=g) * 0.6
    bu = torch.randn(N_USERS, generator=g) * 0.4
    bi = torch.randn(N_ITEMS, generator=g) * 0.5
    users = torch.randint(0, N_USERS, (n_ratings,), generator=g)
    # popular items get more ratings
    weights = torch.linspace(2.0, 0.2, N_ITEMS)
    items = torch.multinomial(weights, n_ratings, replacement=True, generator=g)
    r = 3.6 + bu[users] + bi[items] + (pu[users] * qi[items]).sum(1) + 0.5 * torch.randn(n_ratings, generator=g)
    return users, items, r.round().clamp(1, 5)


class RatingsDataset(Dataset):
    def __init__(self, users, items, ratings, offset=0.0):
        self.users, self.items = users, items
        self.targets = ratings - offset

    def __len__(self):
        return len(self.users)

    def __getitem__(self, i):
        return self.users[i], self.items[i], self.targets[i]


class BiasedMF(L.LightningModule):
    def __init__(self, global_mean, dim=16, lr=5e-3, reg=1e-4):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(N_USERS, dim)
        self.item = nn.Embedding(N_ITEMS, dim)
        self.user_bias = nn.Embedding(N_USERS, 1)
        self.item_bias = nn.Embedding(N_ITEMS, 1)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=0.05)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)

    def forward(self, u, i):
        """Residual around the global mean."""
        dot = (self.user(u) * self.item(i)).sum(-1)
        return dot + self.user_bias(u).squeeze(-1) + self.item_bias(i).squeeze(-1)

    def predict(self, u, i):
        return (self(u, i) + self.hparams.global_mean).clamp(1, 5)

    def training_step(self, batch, batch_idx):
        u, i, r = batch
        mse = F.mse_loss(self(u, i), r)
        reg = self.hparams.reg * (self.user(u).pow(2).sum(-1) + self.item(i).pow(2).sum(-1)).mean()
        self.log("train_rmse", mse.sqrt(), on_epoch=True, on_step=False)
        return mse + reg

    def validation_step(self, batch, batch_idx):
        u, i, r = batch
        self.log("val_rmse", F.mse_loss(self(u, i), r).sqrt(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_rmse"}}


def main():
    L.seed_everything(31)
    users, items, ratings = simulate_ratings(20000, seed=5)
    perm = torch.randperm(len(users))
    tr, va = perm[:16000], perm[16000:]
    global_mean = float(ratings[tr].mean())
    train_ds = RatingsDataset(users[tr], items[tr], ratings[tr], offset=global_mean)
    val_ds = RatingsDataset(users[va], items[va], ratings[va])
    baseline = float((ratings[va] - global_mean).pow(2).mean().sqrt())

    model = BiasedMF(global_mean)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks() + [EarlyStopping("val_rmse", patience=4)])
    trainer.fit(model, DataLoader(train_ds, batch_size=256, shuffle=True), DataLoader(val_ds, batch_size=1024))
    print(f"SYMPTOM val_rmse={float(trainer.callback_metrics['val_rmse']):.3f} "
          f"train_rmse={float(trainer.callback_metrics['train_rmse']):.3f} mean_baseline_rmse={baseline:.3f} "
          f"epochs={trainer.current_epoch}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
