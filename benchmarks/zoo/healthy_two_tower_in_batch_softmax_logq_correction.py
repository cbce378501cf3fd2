"""Healthy: a two-tower retrieval recommender (YouTube / "sampling-bias-corrected" style). The user tower mean-pools
the embeddings of the user's last five items (padding-masked) and passes them through an MLP; the item tower
combines an item-id and a genre embedding. Training uses in-batch softmax: every other target in the batch is a
negative, and the logits are corrected by subtracting log q(item) - the item's in-batch sampling probability, from
its training frequency - so popular items are not over-penalised. Popularity is Zipf-like, so batches repeat the
head items; that is expected (repeats of the target inside a batch are masked out). Temperature 0.1, AdamW, dict
batches. Final: val recall@10 over the whole 500-item
catalogue 0.37 (top-10-popular baseline 0.18)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
N_ITEMS, N_GENRES, HIST = 500, 20, 5


def make_catalogue(seed):
    g = torch.Generator().manual_seed(seed)
    genre = torch.randint(0, N_GENRES, (N_ITEMS,), generator=g)
    pop = 1.0 / torch.arange(1, N_ITEMS + 1).float() ** 0.8
    pop = pop[torch.randperm(N_ITEMS, generator=g)]
    return genre, pop


def make_sessions(genre, pop, n_users, seed):
    g = torch.Generator().manual_seed(seed)
    hist, target = [], []
    for _ in range(n_users):
        favs = torch.randperm(N_GENRES, generator=g)[:2]
        w = pop * ((genre == favs[0]).float() * 3 + (genre == favs[1]).float() + 0.02)
        items = torch.multinomial(w, HIST + 1, replacement=True, generator=g)
        n_hist = int(torch.randint(2, HIST + 1, (1,), generator=g))
        h = torch.full((HIST,), -1)
        h[:n_hist] = items[:n_hist]
        hist.append(h)
        target.append(items[HIST])
    return torch.stack(hist), torch.stack(target)


class Sessions(Dataset):
    def __init__(self, hist, target):
        self.hist, self.target = hist, target

    def __len__(self):
        return len(self.target)

    def __getitem__(self, i):
        h = self.hist[i]
        return {"history": h.clamp_min(0), "history_mask": (h >= 0).float(), "item": self.target[i]}


class TwoTower(L.LightningModule):
    def __init__(self, genre, log_q, d=48, temperature=0.1, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["genre", "log_q"])
        self.register_buffer("genre", genre)
        self.register_buffer("log_q", log_q)
        self.item_id = nn.Embedding(N_ITEMS, d)
        self.genre_emb = nn.Embedding(N_GENRES, d)
        self.hist_emb = nn.Embedding(N_ITEMS, d)
        self.user_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.item_mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def user_vec(self, history, history_mask):
        e = self.hist_emb(history) * history_mask.unsqueeze(-1)
        return F.normalize(self.user_mlp(e.sum(1) / history_mask.sum(1, keepdim=True)), dim=-1)

    def item_vec(self, items):
        return F.normalize(self.item_mlp(self.item_id(items) + self.genre_emb(self.genre[items])), dim=-1)

    def training_step(self, batch, batch_idx):
        u = self.user_vec(batch["history"], batch["history_mask"])
        v = self.item_vec(batch["item"])
        logits = u @ v.T / self.hparams.temperature - self.log_q[batch["item"]][None, :]
        same = batch["item"][:, None] == batch["item"][None, :]
        logits = logits.masked_fill(same & ~torch.eye(len(u), dtype=torch.bool, device=u.device), -1e4)
        loss = F.cross_entropy(logits, torch.arange(len(u), device=u.device))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        u = self.user_vec(batch["history"], batch["history_mask"])
        scores = u @ self.item_vec(torch.arange(N_ITEMS, device=u.device)).T
        top = scores.topk(10, dim=1).indices
        recall = (top == batch["item"][:, None]).any(1).float().mean()
        self.log("val_loss", F.cross_entropy(scores / self.hparams.temperature, batch["item"]))
        self.log("val_recall10", recall, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(113)
    genre, pop = make_catalogue(3)
    tr_h, tr_t = make_sessions(genre, pop, 8000, 1)
    va_h, va_t = make_sessions(genre, pop, 1000, 2)
    freq = torch.bincount(tr_t, minlength=N_ITEMS).float() + 1.0
    log_q = (freq / freq.sum()).log()
    train = DataLoader(Sessions(tr_h, tr_t), batch_size=128, shuffle=True, drop_last=True)
    val = DataLoader(Sessions(va_h, va_t), batch_size=500)
    model = TwoTower(genre, log_q)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="two_tower"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    pop_top = freq.topk(10).indices
    pop_recall = torch.isin(va_t, pop_top).float().mean().item()
    print(f"SYMPTOM val recall@10 {trainer.callback_metrics['val_recall10'].item():.3f} "
          f"(popularity baseline {pop_recall:.3f})")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
