"""Bug: explicit-feedback matrix factorisation (user/item embeddings + biases, MSE on 1-5 star ratings) with a
leave-last-out validation: each user's most recent rating is held out. The script sorts the interaction log by
(user, timestamp) with `order = argsort(...)`, finds each user's last row *in the sorted log*, and builds a boolean
`holdout` mask of those positions. Validation is `log[order][holdout]` as intended, but the training set is taken
as `log[~holdout]` on the *unsorted* log - the mask is applied in the wrong order, so it removes arbitrary rows and
keeps almost every held-out rating (97 % of them) in the training data. The model memorises those ratings' noise and
validation reports it back. Symptom: val RMSE 0.40 with the overlap vs 0.89 when the mask is applied to the sorted
log (`log_sorted[~holdout]`), the honest number."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout13"
N_USERS, N_ITEMS = 400, 250


def make_log(per_user=30, rank=4, seed=11):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(N_USERS, rank, generator=g) * 0.6
    V = torch.randn(N_ITEMS, rank, generator=g) * 0.6
    bu = 0.4 * torch.randn(N_USERS, generator=g)
    bi = 0.5 * torch.randn(N_ITEMS, generator=g)
    users = torch.arange(N_USERS).repeat_interleave(per_user)
    items = torch.randint(0, N_ITEMS, (len(users),), generator=g)
    ts = torch.rand(len(users), generator=g) * 1e6
    score = 3.4 + bu[users] + bi[items] + (U[users] * V[items]).sum(1) + 0.6 * torch.randn(len(users), generator=g)
    rating = score.round().clamp(1, 5)
    perm = torch.randperm(len(users), generator=g)  # the export is not grouped by user
    return users[perm], items[perm], ts[perm], rating[perm]


def leave_last_out(users, items, ts, rating):
    key = users.double() * 1e7 + ts.double()
    order = torch.argsort(key)
    su = users[order]
    last = torch.ones(len(su), dtype=torch.bool)
    last[:-1] = su[1:] != su[:-1]  # last row of each user in the sorted log
    holdout = last
    val = (users[order][holdout], items[order][holdout], rating[order][holdout])
    train = (users[~holdout], items[~holdout], rating[~holdout])
    return train, val


class MatrixFactorization(L.LightningModule):
    def __init__(self, dim=16, lr=1e-2, weight_decay=0.3, mean_rating=3.5):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(N_USERS, dim)
        self.item = nn.Embedding(N_ITEMS, dim)
        self.user_bias = nn.Embedding(N_USERS, 1)
        self.item_bias = nn.Embedding(N_ITEMS, 1)
        for e in (self.user, self.item):
            nn.init.normal_(e.weight, std=0.1)
        for e in (self.user_bias, self.item_bias):
            nn.init.zeros_(e.weight)
        self.last_rmse = float("nan")

    def forward(self, u, i):
        dot = (self.user(u) * self.item(i)).sum(-1)
        return self.hparams.mean_rating + dot + self.user_bias(u).squeeze(-1) + self.item_bias(i).squeeze(-1)

    def training_step(self, batch, batch_idx):
        u, i, r = batch
        loss = F.mse_loss(self(u, i), r)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        u, i, r = batch
        self.log("val_rmse", F.mse_loss(self(u, i), r).sqrt())

    def on_validation_epoch_end(self):
        self.last_rmse = float(self.trainer.callback_metrics["val_rmse"])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def main():
    L.seed_everything(31)
    users, items, ts, rating = make_log()
    (tu, ti, tr), (vu, vi, vr) = leave_last_out(users, items, ts, rating)
    train_loader = DataLoader(TensorDataset(tu, ti, tr), batch_size=256, shuffle=True)
    val_loader = DataLoader(TensorDataset(vu, vi, vr), batch_size=1024)
    model = MatrixFactorization(mean_rating=float(tr.mean()))
    trainer = L.Trainer(
        max_epochs=25,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="ratings_mf"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, val_loader)
    seen = {(int(a), int(b), float(c)) for a, b, c in zip(tu, ti, tr)}
    overlap = sum((int(a), int(b), float(c)) in seen for a, b, c in zip(vu, vi, vr)) / len(vu)
    print(f"SYMPTOM val_rmse={model.last_rmse:.3f} val_rows_in_train={overlap:.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
