"""Healthy: NeuMF-style recommender (a GMF tower and an MLP tower over user/item embeddings, fused by a linear
layer) trained on implicit feedback. 500 synthetic users pick ~25 of 300 items each from a low-rank affinity;
each user's last interaction is held out (leave-one-out) and the training pairs exclude it. The training Dataset
returns HuggingFace-style dict batches `{"user_ids", "item_ids", "labels"}` with 4 fresh random negatives per
positive, and the model computes its BCE-with-logits loss inside `forward` when `labels` are given. Validation
ranks each user's held-out item among 99 items the user never touched (HR@10, NDCG@10). Final HR@10 0.526,
NDCG@10 0.328 (ranking by training popularity gives HR@10 0.190, a random ranking 0.10)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"
N_USERS, N_ITEMS, N_NEG = 500, 300, 4


def make_interactions(per_user=25, rank=6, seed=17):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(N_USERS, rank, generator=g)
    V = torch.randn(N_ITEMS, rank, generator=g)
    popularity = 0.8 * torch.randn(N_ITEMS, generator=g)
    affinity = U @ V.T / rank ** 0.5 * 2.0 + popularity
    histories = [torch.multinomial(torch.softmax(affinity[u], 0), per_user, replacement=False, generator=g)
                 for u in range(N_USERS)]
    return histories  # each in interaction order; the last one is held out


class TrainPairs(Dataset):
    def __init__(self, histories):
        self.seen = [set(h.tolist()) for h in histories]
        pairs = [(u, int(i)) for u, h in enumerate(histories) for i in h[:-1]]
        self.users = torch.tensor([p[0] for p in pairs])
        self.items = torch.tensor([p[1] for p in pairs])

    def __len__(self):
        return len(self.users)

    def __getitem__(self, k):
        u = int(self.users[k])
        negs = []
        while len(negs) < N_NEG:
            j = int(torch.randint(0, N_ITEMS, (1,)))
            if j not in self.seen[u]:
                negs.append(j)
        items = torch.tensor([int(self.items[k])] + negs)
        labels = torch.tensor([1.0] + [0.0] * N_NEG)
        return {"user_ids": torch.full((1 + N_NEG,), u), "item_ids": items, "labels": labels}


def flatten_collate(rows):
    return {k: torch.cat([r[k] for r in rows]) for k in rows[0]}


class HeldOut(Dataset):
    def __init__(self, histories, n_candidates=100, seed=99):
        g = torch.Generator().manual_seed(seed)
        self.rows = []
        for u, h in enumerate(histories):
            seen = set(h.tolist())
            pool = torch.tensor([j for j in range(N_ITEMS) if j not in seen])
            negs = pool[torch.randperm(len(pool), generator=g)[:n_candidates - 1]]
            self.rows.append((u, torch.cat([h[-1:], negs])))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, k):
        u, cands = self.rows[k]
        return {"user_ids": torch.tensor(u), "candidate_ids": cands}


class NeuMF(L.LightningModule):
    def __init__(self, gmf_dim=16, mlp_dim=16, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gmf_user, self.gmf_item = nn.Embedding(N_USERS, gmf_dim), nn.Embedding(N_ITEMS, gmf_dim)
        self.mlp_user, self.mlp_item = nn.Embedding(N_USERS, mlp_dim), nn.Embedding(N_ITEMS, mlp_dim)
        for e in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(e.weight, std=0.05)
        self.mlp = nn.Sequential(nn.Linear(2 * mlp_dim, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU())
        self.fuse = nn.Linear(gmf_dim + 32, 1)
        self.summary = {}

    def forward(self, user_ids, item_ids, labels=None):
        gmf = self.gmf_user(user_ids) * self.gmf_item(item_ids)
        mlp = self.mlp(torch.cat([self.mlp_user(user_ids), self.mlp_item(item_ids)], dim=-1))
        logits = self.fuse(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.binary_cross_entropy_with_logits(logits, labels)
        return out

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        users, cands = batch["user_ids"], batch["candidate_ids"]
        scores = self(users[:, None].expand_as(cands), cands)["logits"]
        rank = (scores > scores[:, :1]).sum(1)  # the held-out item sits in column 0
        hit = (rank < 10).float()
        ndcg = hit / torch.log2(rank.float() + 2)
        self.log_dict({"val_hr10": hit.mean(), "val_ndcg10": ndcg.mean()})

    def on_validation_epoch_end(self):
        m = self.trainer.callback_metrics
        self.summary = {"hr": float(m["val_hr10"]), "ndcg": float(m["val_ndcg10"])}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-6)


def main():
    L.seed_everything(1000)
    histories = make_interactions()
    train_loader = DataLoader(TrainPairs(histories), batch_size=128, shuffle=True, collate_fn=flatten_collate)
    val_loader = DataLoader(HeldOut(histories), batch_size=500)
    model = NeuMF()
    trainer = L.Trainer(
        max_epochs=12,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="neumf_implicit"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, val_loader)
    counts = torch.bincount(torch.cat([h[:-1] for h in histories]), minlength=N_ITEMS).float()
    pop = counts[torch.stack([c for _, c in val_loader.dataset.rows])]
    pop_hr = ((pop > pop[:, :1]).sum(1) < 10).float().mean().item()
    print(f"SYMPTOM val_hr10={model.summary['hr']:.3f} val_ndcg10={model.summary['ndcg']:.3f} "
          f"popularity_hr10={pop_hr:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
