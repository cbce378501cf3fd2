"""Healthy: implicit-feedback matrix factorisation in the weighted-MF / iALS style, trained by gradient descent on
whole user rows: a batch of users is scored against every item, the binary preference p_ui (1 if the user interacted)
is fitted with a squared loss weighted by confidence c_ui = 1 + alpha * count_ui, so the ~96.5 % zeros of the matrix
carry weight 1 and the observed interactions weight 1 + 5 * count. Two interactions per user are held out
before the training matrix is built; validation ranks all items a user has not interacted with in training and
reports recall@10 against a most-popular baseline. Adam with L2 on the factors, ReduceLROnPlateau on val recall (max
mode). Final: val recall@10 0.346 vs 0.125 for most-popular."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"
N_USERS, N_ITEMS, K = 600, 400, 10


def simulate_interactions(seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(N_USERS, 6, generator=g)
    v = torch.randn(N_ITEMS, 6, generator=g)
    pop = torch.linspace(1.0, -1.0, N_ITEMS)
    logits = u @ v.T / 1.2 + pop
    n_per_user = torch.randint(10, 40, (N_USERS,), generator=g)
    counts = torch.zeros(N_USERS, N_ITEMS)
    for i in range(N_USERS):
        items = torch.multinomial(torch.softmax(logits[i], 0), int(n_per_user[i]), replacement=True, generator=g)
        counts[i].index_add_(0, items, torch.ones(len(items)))
    # hold out two distinct interacted items per user
    held = torch.zeros_like(counts, dtype=torch.bool)
    for i in range(N_USERS):
        seen = counts[i].nonzero().squeeze(1)
        held[i, seen[torch.randperm(len(seen), generator=g)[:2]]] = True
    train_counts = counts.masked_fill(held, 0.0)
    return train_counts, held


class WeightedMF(L.LightningModule):
    def __init__(self, train_counts, held, dim=8, alpha=5.0, reg=1e-2, lr=1e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["train_counts", "held"])
        self.register_buffer("counts", train_counts)
        self.register_buffer("held", held)
        self.register_buffer("popularity", (train_counts > 0).float().sum(0))
        self.user = nn.Embedding(N_USERS, dim)
        self.item = nn.Embedding(N_ITEMS, dim)
        self.item_bias = nn.Parameter(torch.zeros(N_ITEMS))
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, users):                                    # (B,) -> (B, N_ITEMS) preference scores
        return self.user(users) @ self.item.weight.T + self.item_bias

    def training_step(self, batch, batch_idx):
        (users,) = batch
        r = self.counts[users]
        pref = (r > 0).float()
        conf = 1.0 + self.hparams.alpha * r
        err = (conf * (self(users) - pref) ** 2).sum(1).mean() / N_ITEMS
        reg = self.hparams.reg * (self.user(users).pow(2).sum(1).mean() + self.item.weight.pow(2).sum(1).mean())
        self.log("train_wmse", err, on_epoch=True, on_step=False)
        return err + reg

    def _recall(self, scores, users):
        scores = scores.masked_fill(self.counts[users] > 0, float("-inf"))
        top = scores.topk(K, dim=1).indices
        hits = self.held[users].gather(1, top).float().sum(1)
        return (hits / self.held[users].float().sum(1)).mean()

    def validation_step(self, batch, batch_idx):
        (users,) = batch
        self.log("val_recall10", self._recall(self(users), users), prog_bar=True)
        self.log("val_recall10_popular", self._recall(self.popularity.expand(len(users), -1).clone(), users))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_recall10"}}


def main():
    L.seed_everything(4242)
    train_counts, held = simulate_interactions(seed=9)
    print(f"density {float((train_counts > 0).float().mean()):.3f}, max count {int(train_counts.max())}")
    model = WeightedMF(train_counts, held)
    users = TensorDataset(torch.arange(N_USERS))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(users, batch_size=32, shuffle=True), DataLoader(users, batch_size=N_USERS))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_recall10={float(m['val_recall10']):.3f} popular_recall10={float(m['val_recall10_popular']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
