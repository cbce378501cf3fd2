"""Bug: an explicit-feedback matrix-factorisation recommender (user/item embeddings of rank 16 plus user and item
biases around the global mean) trained with MSE on synthetic 1-5 star ratings: 400 users with raw account ids
(10007, 10014, ...) and a catalogue of 250 products, a rank-4 taste model plus user and item offsets plus noise.
The rating log is split 80/20 at random, Adam, ReduceLROnPlateau on val RMSE.

The log is turned into tensors by a small `encode` helper that builds the user index from the rows it is given,
in order of first appearance (`dict.fromkeys`). The item index comes from the product catalogue and is shared,
but the helper is called separately on the train and the validation log, so user 17 of the validation set is
whoever happened to appear 17th in the validation rows, a different person than user 17 in training. Training
fits normally; validation scores every rating with somebody else's taste vector and bias, and the better the
personal factors fit the worse validation gets. Symptom: val RMSE 1.015, above the 0.899 of always predicting the
training mean, while train RMSE falls to 0.237; with one user index shared by both splits val RMSE is 0.625."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout21"
N_USERS, N_ITEMS, PER_USER = 400, 250, 30


def make_rating_log(g):
    user_taste = torch.randn(N_USERS, 4, generator=g) * 0.6
    item_traits = torch.randn(N_ITEMS, 4, generator=g) * 0.6
    user_off = 0.4 * torch.randn(N_USERS, generator=g)
    item_off = 0.4 * torch.randn(N_ITEMS, generator=g)
    users = torch.arange(N_USERS).repeat_interleave(PER_USER)
    items = torch.stack([torch.randperm(N_ITEMS, generator=g)[:PER_USER] for _ in range(N_USERS)]).flatten()
    rating = 3.2 + (user_taste[users] * item_traits[items]).sum(1) + user_off[users] + item_off[items]
    rating = (rating + 0.3 * torch.randn(len(users), generator=g)).clamp(1, 5)
    account_ids = 10000 + 7 * (users + 1)
    catalogue_sku = 5000 + items
    return account_ids, catalogue_sku, rating


def encode(account_ids, skus, ratings, sku_index):
    user_index = {a: i for i, a in enumerate(dict.fromkeys(account_ids.tolist()))}
    u = torch.tensor([user_index[a] for a in account_ids.tolist()])
    i = torch.tensor([sku_index[s] for s in skus.tolist()])
    return TensorDataset(u, i, ratings)


class MatrixFactorisation(L.LightningModule):
    def __init__(self, global_mean, rank=16, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(N_USERS, rank)
        self.item = nn.Embedding(N_ITEMS, rank)
        self.user_bias = nn.Embedding(N_USERS, 1)
        self.item_bias = nn.Embedding(N_ITEMS, 1)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=0.1)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)

    def forward(self, u, i):
        dot = (self.user(u) * self.item(i)).sum(1)
        return self.hparams.global_mean + dot + self.user_bias(u).squeeze(1) + self.item_bias(i).squeeze(1)

    def training_step(self, batch, batch_idx):
        u, i, r = batch
        loss = F.mse_loss(self(u, i), r)
        self.log("train_rmse", loss.sqrt(), on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        u, i, r = batch
        self.log("val_rmse", F.mse_loss(self(u, i), r).sqrt())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_rmse"}}


def main():
    L.seed_everything(2104)
    g = torch.Generator().manual_seed(4)
    accounts, skus, ratings = make_rating_log(g)
    sku_index = {s: i for i, s in enumerate(range(5000, 5000 + N_ITEMS))}
    perm = torch.randperm(len(ratings), generator=g)
    tr, va = perm[: int(0.8 * len(perm))], perm[int(0.8 * len(perm)):]
    train = encode(accounts[tr], skus[tr], ratings[tr], sku_index)
    val = encode(accounts[va], skus[va], ratings[va], sku_index)
    global_mean = float(ratings[tr].mean())
    model = MatrixFactorisation(global_mean)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=256, shuffle=True), DataLoader(val, batch_size=1024))
    baseline = float((ratings[va] - global_mean).pow(2).mean().sqrt())
    print(f"SYMPTOM val_rmse={float(trainer.callback_metrics['val_rmse']):.3f} "
          f"train_rmse={float(trainer.callback_metrics['train_rmse']):.3f} mean_baseline={baseline:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
