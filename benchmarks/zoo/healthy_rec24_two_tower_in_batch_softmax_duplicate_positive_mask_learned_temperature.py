"""Healthy: two-tower retrieval on a synthetic interaction log (500 users, 400 items in 20 categories, users pick
items from a hidden 6-d taste x item-profile affinity with a Zipf-like popularity boost, seeded torch.Generator).
The user tower embeds the user id plus a noisy 6-feature taste profile; the item tower embeds item id plus
category. Both towers end in L2-normalised 32-d vectors and the loss is an in-batch sampled softmax with a
learned temperature.

Why it is correct (and tricky): popular items appear several times in one batch, so the naive in-batch softmax
would treat a copy of the positive item as a negative. The logits of off-diagonal entries whose item equals the
row's positive are masked to -inf, so duplicates are neither positives nor negatives. The temperature is
learned as a log-scale and clamped (log 1/0.01 upper bound, like CLIP) so it can't run away. Unique (user, item)
pairs are de-duplicated before the split, so a validation pair is never a training pair; evaluation ranks the
full catalogue with the user's training items filtered out. Training stops after 6 epochs, where
validation loss bottoms out (4.88 from 5.47). Recall@20 on held-out pairs reaches 0.323 vs 0.197 for a
popularity ranking."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"
N_USERS, N_ITEMS, N_CATS = 500, 400, 20


def interaction_log(g):
    taste = torch.randn(N_USERS, 6, generator=g)
    profile = torch.randn(N_ITEMS, 6, generator=g)
    category = torch.randint(0, N_CATS, (N_ITEMS,), generator=g)
    popularity = -0.8 * torch.log(torch.arange(1, N_ITEMS + 1).float())
    logits = taste @ profile.T + popularity[torch.randperm(N_ITEMS, generator=g)]
    items = torch.multinomial(torch.softmax(logits, 1), 16, replacement=False, generator=g)
    users = torch.arange(N_USERS).repeat_interleave(16)
    user_feats = taste + 0.5 * torch.randn(N_USERS, 6, generator=g)
    return users, items.reshape(-1), user_feats, category


class TwoTower(L.LightningModule):
    def __init__(self, user_feats, category, dim=32, lr=1e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["user_feats", "category"])
        self.register_buffer("user_feats", user_feats)
        self.register_buffer("category", category)
        self.user_id = nn.Embedding(N_USERS, dim)
        self.user_mlp = nn.Sequential(nn.Linear(dim + 6, 64), nn.ReLU(), nn.Linear(64, dim))
        self.item_id = nn.Embedding(N_ITEMS, dim)
        self.item_cat = nn.Embedding(N_CATS, 8)
        self.item_mlp = nn.Sequential(nn.Linear(dim + 8, 64), nn.ReLU(), nn.Linear(64, dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.1)))

    def user_vec(self, users):
        return F.normalize(self.user_mlp(torch.cat([self.user_id(users), self.user_feats[users]], 1)), dim=-1)

    def item_vec(self, items):
        return F.normalize(self.item_mlp(torch.cat([self.item_id(items), self.item_cat(self.category[items])], 1)),
                           dim=-1)

    def _loss(self, users, items):
        scale = self.log_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * self.user_vec(users) @ self.item_vec(items).T
        same_item = items[:, None] == items[None, :]
        same_item.fill_diagonal_(False)
        logits = logits.masked_fill(same_item, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(users), device=users.device))

    def training_step(self, batch, batch_idx):
        loss = self._loss(*batch)
        self.log("train_loss", loss, on_epoch=True)
        self.log("temperature", 1 / self.log_scale.exp())
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(*batch))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


def recall_at_k(model, train_pairs, val_pairs, k=20):
    with torch.no_grad():
        scores = model.user_vec(torch.arange(N_USERS)) @ model.item_vec(torch.arange(N_ITEMS)).T
    scores[train_pairs[0], train_pairs[1]] = float("-inf")
    top = scores.topk(k, dim=1).indices
    return (top[val_pairs[0]] == val_pairs[1][:, None]).any(1).float().mean()


def main():
    L.seed_everything(2402)
    g = torch.Generator().manual_seed(7)
    users, items, user_feats, category = interaction_log(g)
    pairs = torch.unique(torch.stack([users, items], 1), dim=0)
    perm = torch.randperm(len(pairs), generator=g)
    n_val = len(pairs) // 8
    val_pairs, train_pairs = pairs[perm[:n_val]].T, pairs[perm[n_val:]].T
    model = TwoTower(user_feats, category)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*train_pairs), batch_size=256, shuffle=True),
                DataLoader(TensorDataset(*val_pairs), batch_size=256))
    model.eval()
    recall = recall_at_k(model, train_pairs, val_pairs)
    popular = torch.bincount(train_pairs[1], minlength=N_ITEMS).topk(20).indices
    pop_recall = torch.isin(val_pairs[1], popular).float().mean()
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} recall@20={float(recall):.3f} "
          f"popularity_recall@20={float(pop_recall):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
