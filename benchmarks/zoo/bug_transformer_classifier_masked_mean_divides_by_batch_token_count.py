"""Bug: news-topic classifier (token embedding + one Transformer encoder layer with a key padding mask, masked mean
pooling, BERT-style dense + tanh pooler, linear head; dict batches `input_ids`/`attention_mask`/`labels`,
variable-length texts padded per batch). The masked mean pool is written `(h * m).sum(1) / m.sum()`, missing `dim=1,
keepdim=True` in the denominator: every text's vector is divided by the number of real tokens in the *whole batch*,
so a text's logits depend on how many other texts share its batch and how long they are. Training (batches of 16)
adapts to that scale; validation runs in one batch of 500, where every pooled vector is about thirty times smaller
and the probabilities lose their calibration.
Symptom: val loss 1.05 / val acc 0.906 (train loss 0.012) vs 0.24 / 0.948 with `m.sum(1)`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout10"
TOPICS = 4
N_WORDS = 400  # word ids 2..401; 0 = padding, 1 = [UNK]


def articles(n, seed):
    """Each topic owns 40 keywords; an article is 10-60 tokens, 15 % topic keywords, the rest shared vocabulary."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = int(torch.randint(TOPICS, (1,), generator=g))
        length = int(torch.randint(10, 61, (1,), generator=g))
        shared = torch.randint(2 + TOPICS * 40, 2 + N_WORDS, (length,), generator=g)
        topical = 2 + y * 40 + torch.randint(0, 40, (length,), generator=g)
        ids = torch.where(torch.rand(length, generator=g) < 0.15, topical, shared)
        out.append((ids, y))
    return out


def collate(items):
    ids = pad_sequence([i for i, _ in items], batch_first=True)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([y for _, y in items])}


class TopicClassifier(L.LightningModule):
    def __init__(self, d=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(N_WORDS + 2, d, padding_idx=0)
        self.encoder = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True)
        self.pooler = nn.Sequential(nn.Linear(d, d), nn.Tanh())  # BERT-style pooler
        self.head = nn.Linear(d, TOPICS)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(self.emb(input_ids), src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum()  # BUG: per-text count is m.sum(1)
        return self.head(self.pooler(pooled))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log_dict({"val_loss": F.cross_entropy(logits, batch["labels"]),
                       "val_acc": (logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(1)
    model = TopicClassifier()
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    val = articles(500, 4)
    trainer.fit(model, DataLoader(articles(2400, 3), batch_size=16, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=500, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f} "
          f"train_loss={m['train_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
