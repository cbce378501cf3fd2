"""Healthy: an implicit-feedback recommender (two-tower dot product plus a product bias) trained with binary
cross-entropy on observed interactions against sampled negatives. Synthetic purchase log (seeded torch.Generator):
500 customers and 300 products, each customer buys 24 products drawn without replacement from a softmax over a
rank-4 taste model plus product popularity. Evaluation is leave-one-out: each customer's last purchase is held out
and scored against 20 fixed products the customer never bought; validation reports BCE on the 1:1 positive/
negative pairs and HitRate@5 of the held-out item among its 21 candidates.

A `Dataset` holds the training positives and draws a fresh negative for every positive each time the item is read,
rejecting products the customer bought (in training *or* validation), so no (customer, product) pair ever appears
with both labels and the held-out purchase is never offered as a negative. One id index built from the catalogue
is shared by both splits. Adam with a tiny weight decay, cosine decay.

Why it is correct: negatives are true non-interactions, labels are balanced 1:1 by construction, the validation
positive is not in the training pairs, and both splits use the same customer/product indices. Measured: val
HitRate@5 0.718 against 0.24 (=5/21) at random and 0.512 for ranking by training popularity."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"
N_USERS, N_ITEMS, PER_USER, N_CAND = 500, 300, 24, 20


def simulate_purchases(g):
    taste = torch.randn(N_USERS, 4, generator=g)
    traits = torch.randn(N_ITEMS, 4, generator=g)
    popularity = torch.randn(N_ITEMS, generator=g)
    logits = taste @ traits.T + popularity
    return torch.stack([torch.multinomial(logits[u].softmax(0), PER_USER, generator=g) for u in range(N_USERS)])


class PairsWithFreshNegatives(Dataset):
    def __init__(self, users, items, bought):
        self.users, self.items, self.bought = users, items, bought

    def __len__(self):
        return len(self.users)

    def __getitem__(self, idx):
        u = self.users[idx]
        neg = torch.randint(0, N_ITEMS, (1,)).item()
        while self.bought[u, neg]:
            neg = torch.randint(0, N_ITEMS, (1,)).item()
        return torch.stack([u, u]), torch.tensor([self.items[idx].item(), neg]), torch.tensor([1.0, 0.0])


def collate(samples):
    users, items, labels = zip(*samples)
    return torch.cat(users), torch.cat(items), torch.cat(labels)


class TwoTower(L.LightningModule):
    def __init__(self, dim=16, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(N_USERS, dim)
        self.item = nn.Embedding(N_ITEMS, dim)
        self.item_bias = nn.Embedding(N_ITEMS, 1)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, u, i):
        return (self.user(u) * self.item(i)).sum(-1) + self.item_bias(i).squeeze(-1)

    def training_step(self, batch, batch_idx):
        u, i, y = batch
        loss = F.binary_cross_entropy_with_logits(self(u, i), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        u, cand = batch
        scores = self(u[:, None], cand)
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1
        pairs = scores[:, :2]
        self.log("val_loss", F.binary_cross_entropy_with_logits(pairs, labels[:, :2]))
        rank = (scores[:, 1:] > scores[:, :1]).sum(1)
        self.log("val_hr5", (rank < 5).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-6)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2112)
    g = torch.Generator().manual_seed(14)
    purchases = simulate_purchases(g)
    bought = torch.zeros(N_USERS, N_ITEMS, dtype=torch.bool)
    bought[torch.arange(N_USERS)[:, None], purchases] = True
    train_items = purchases[:, :-1]
    users = torch.arange(N_USERS)[:, None].expand_as(train_items).flatten()
    train = PairsWithFreshNegatives(users, train_items.flatten(), bought)
    never = (~bought).float()
    negatives = torch.multinomial(never, N_CAND, generator=g)
    candidates = torch.cat([purchases[:, -1:], negatives], 1)
    val = TensorDataset(torch.arange(N_USERS), candidates)
    model = TwoTower()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=256, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=N_USERS))
    pop = torch.bincount(train_items.flatten(), minlength=N_ITEMS).float()[candidates]
    pop_hr5 = ((pop[:, 1:] > pop[:, :1]).sum(1) < 5).float().mean()
    print(f"SYMPTOM val_hr5={float(trainer.callback_metrics['val_hr5']):.3f} popularity_hr5={float(pop_hr5):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
