"""Bug: dual-encoder passage retriever trained from a search click log (300 passages, each a 3-token title and a
12-token body; queries are short noisy re-wordings of a few body tokens). A "query expansion" step meant to add
context appends the title of the logged document to every query, but the title it takes is the `clicked_title`
field of the log row, i.e. the title of the passage the query must retrieve. Both towers share the token
embedding, so the query tower matches the title tokens exactly; training (in-batch InfoNCE) converges at once
and validation looks excellent because the val queries are expanded the same way. At serving time there is no
click yet. Measured on 600 held-out queries retrieving among all 300 passages: recall@1 0.90 (val loss 0.43)
with the clicked-title expansion against 0.38 (val loss 3.26) for the raw queries."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout34"
VOCAB, N_PASSAGES, BODY, TITLE, Q_LEN = 400, 300, 12, 3, 5


def corpus(g):
    titles = torch.randint(0, VOCAB, (N_PASSAGES, TITLE), generator=g)
    bodies = torch.randint(0, VOCAB, (N_PASSAGES, BODY), generator=g)
    return titles, bodies


def click_log(n, bodies, g):
    clicked = torch.randint(0, N_PASSAGES, (n,), generator=g)
    picked = torch.randint(0, BODY, (n, Q_LEN), generator=g)
    words = bodies[clicked[:, None], picked]
    noise = torch.rand(n, Q_LEN, generator=g) < 0.4
    return torch.where(noise, torch.randint(0, VOCAB, (n, Q_LEN), generator=g), words), clicked


class ClickPairs(Dataset):
    def __init__(self, queries, clicked, titles):
        self.queries, self.clicked, self.titles = queries, clicked, titles

    def __len__(self):
        return len(self.clicked)

    def __getitem__(self, i):
        clicked_title = self.titles[self.clicked[i]]
        return {"query_ids": torch.cat([self.queries[i], clicked_title]), "labels": self.clicked[i]}


class DualEncoder(L.LightningModule):
    def __init__(self, titles, bodies, d=64, lr=5e-3, temperature=0.05):
        super().__init__()
        self.save_hyperparameters(ignore=["titles", "bodies"])
        self.register_buffer("passages", torch.cat([titles, bodies], 1))
        self.embed = nn.Embedding(VOCAB, d)
        self.query_proj = nn.Linear(d, d)
        self.passage_proj = nn.Linear(d, d)

    def encode_queries(self, ids):
        return F.normalize(self.query_proj(self.embed(ids).mean(1)), dim=-1)

    def encode_passages(self, ids):
        return F.normalize(self.passage_proj(self.embed(ids).mean(1)), dim=-1)

    def training_step(self, batch, batch_idx):
        q = self.encode_queries(batch["query_ids"])
        p = self.encode_passages(self.passages[batch["labels"]])
        logits = q @ p.T / self.hparams.temperature
        same = batch["labels"][:, None] == batch["labels"][None]
        logits = logits.masked_fill(same & ~torch.eye(len(q), dtype=torch.bool), -1e4)
        loss = F.cross_entropy(logits, torch.arange(len(q)))
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        scores = self.encode_queries(batch["query_ids"]) @ self.encode_passages(self.passages).T
        self.log("val_loss", F.cross_entropy(scores / self.hparams.temperature, batch["labels"]))
        self.log("val_recall1", (scores.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3405)
    g = torch.Generator().manual_seed(3405)
    titles, bodies = corpus(g)
    queries, clicked = click_log(3600, bodies, g)
    train = ClickPairs(queries[:3000], clicked[:3000], titles)
    val = ClickPairs(queries[3000:], clicked[3000:], titles)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DualEncoder(titles, bodies), DataLoader(train, batch_size=64, shuffle=True),
                DataLoader(val, batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_recall1={m['val_recall1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
