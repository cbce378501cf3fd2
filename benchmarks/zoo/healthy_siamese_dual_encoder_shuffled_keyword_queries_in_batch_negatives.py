"""Healthy: siamese dual-encoder passage retrieval with in-batch negatives. One shared tower (token embeddings, a
1-layer pre-norm transformer encoder with dropout, masked mean pooling, L2-normalised projection) encodes both
queries and passages; HF-style dict batches `q_input_ids`/`q_attention_mask`/`p_input_ids`/`p_attention_mask`, the
InfoNCE loss (temperature 0.05, labels = arange) is computed inside the model on the raw scaled scores, AdamW.
Queries are 3-5 of the passage's words, shuffled, plus 2 noise words. Final val recall@1 among all 400 validation
passages 0.60 (chance 0.0025)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout17"
PAD, N_WORDS = 0, 300


def make_pairs(n, g):
    pairs = []
    for _ in range(n):
        passage = (torch.randperm(N_WORDS, generator=g)[: int(torch.randint(10, 17, (1,), generator=g))] + 1).tolist()
        keep = torch.randperm(len(passage), generator=g)[: int(torch.randint(3, 6, (1,), generator=g))]
        noise = (torch.randint(0, N_WORDS, (2,), generator=g) + 1).tolist()
        query = [passage[i] for i in keep.tolist()] + noise
        order = torch.randperm(len(query), generator=g).tolist()
        pairs.append(([query[i] for i in order], passage))
    return pairs


class Pairs(Dataset):
    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]


def pad(seqs):
    ids = torch.full((len(seqs), max(map(len, seqs))), PAD)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, (ids != PAD).long()


def collate(batch):
    q, qm = pad([b[0] for b in batch])
    p, pm = pad([b[1] for b in batch])
    return {"q_input_ids": q, "q_attention_mask": qm, "p_input_ids": p, "p_attention_mask": pm}


class Tower(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.emb = nn.Embedding(N_WORDS + 1, d, padding_idx=PAD)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.proj = nn.Linear(d, d)

    def forward(self, ids, mask):
        h = self.enc(self.emb(ids), src_key_padding_mask=mask == 0)
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return F.normalize(self.proj(pooled), dim=-1)


@dataclass
class RetrievalOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class DualEncoder(nn.Module):
    def __init__(self, temperature=0.05):
        super().__init__()
        self.encoder = Tower()  # siamese: queries and passages share the tower
        self.temperature = temperature

    def forward(self, q_input_ids, q_attention_mask, p_input_ids, p_attention_mask):
        q = self.encoder(q_input_ids, q_attention_mask)
        p = self.encoder(p_input_ids, p_attention_mask)
        scores = q @ p.T / self.temperature
        labels = torch.arange(len(q), device=q.device)
        return RetrievalOutput(loss=F.cross_entropy(scores, labels), logits=scores)


class RetrievalModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = DualEncoder()
        self.val_q, self.val_p = [], []

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)
        self.val_q.append(self.model.encoder(batch["q_input_ids"], batch["q_attention_mask"]))
        self.val_p.append(self.model.encoder(batch["p_input_ids"], batch["p_attention_mask"]))

    def on_validation_epoch_end(self):
        q, p = torch.cat(self.val_q), torch.cat(self.val_p)
        self.val_q, self.val_p = [], []
        recall = ((q @ p.T).argmax(-1) == torch.arange(len(q), device=q.device)).float().mean()
        self.log("val_recall_at_1", recall)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)


def main():
    L.seed_everything(77)
    g = torch.Generator().manual_seed(77)
    train_dl = DataLoader(Pairs(make_pairs(8000, g)), batch_size=64, shuffle=True, collate_fn=collate,
                          drop_last=True)
    val_dl = DataLoader(Pairs(make_pairs(400, g)), batch_size=200, collate_fn=collate)
    module = RetrievalModule()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="siamese_retrieval"),
                        enable_checkpointing=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(module, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={float(m['train_loss']):.3f} val_recall_at_1={float(m['val_recall_at_1']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
