"""Healthy: BiGRU token classifier (BIO tags for one entity type) on long synthetic documents of 160 tokens that
are cut into 32-token windows with stride 16, the HF `return_overflowing_tokens` + `stride` recipe. Overlapping
windows of one document share half their tokens, so the documents are split 80/20 *before* chunking and every
window of a validation document stays in validation. Each token is scored once: in every window after a
document's first, the first 16 positions (already labelled in the previous window) get label -100, and the
loss and accuracy ignore -100. An entity is a run of "name" tokens that follows a trigger word (e.g. "Dr", "Mrs")
within two positions, so the tagger needs left context, which the bidirectional encoder legitimately has (this is
tagging, not next-token prediction). Batches are HF-style dicts. Validation: entity-token F1 0.99 and loss 0.010,
against 0.0 F1 for the all-O prediction (entity tokens are 10% of tokens)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout34"
VOCAB, DOC_LEN, WINDOW, STRIDE = 120, 160, 32, 16
B, I = 1, 2  # O = 0; word ids: 0..4 triggers, 5..34 names, 35..119 ordinary words


def documents(n, g):
    docs = torch.randint(35, VOCAB, (n, DOC_LEN), generator=g)
    tags = torch.zeros(n, DOC_LEN, dtype=torch.long)
    for d in range(n):
        t = 0
        while t < DOC_LEN - 6:
            r = torch.rand(1, generator=g).item()
            if r < 0.06:  # trigger word, optional filler, then a 1-3 token name
                docs[d, t] = torch.randint(0, 5, (1,), generator=g)
                t += 1 + int(torch.rand(1, generator=g).item() < 0.3)
                length = torch.randint(1, 4, (1,), generator=g).item()
                docs[d, t:t + length] = torch.randint(5, 35, (length,), generator=g)
                tags[d, t], tags[d, t + 1:t + length] = B, I
                t += length
            elif r < 0.10:  # a name word with no trigger is not an entity
                docs[d, t] = torch.randint(5, 35, (1,), generator=g)
                t += 2
            else:
                t += 1
    return docs, tags


class StridedWindows(Dataset):
    def __init__(self, docs, tags):
        self.items = []
        for doc, tag in zip(docs, tags):
            for start in range(0, DOC_LEN - WINDOW + 1, STRIDE):
                labels = tag[start:start + WINDOW].clone()
                if start > 0:
                    labels[:WINDOW - STRIDE] = -100  # scored in the previous window
                self.items.append({"input_ids": doc[start:start + WINDOW],
                                   "attention_mask": torch.ones(WINDOW, dtype=torch.long), "labels": labels})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@dataclass
class TokenClassifierOutput:
    logits: torch.Tensor


class BiGRUTagger(L.LightningModule):
    def __init__(self, d=48, lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * d, 3)

    def forward(self, input_ids, attention_mask):
        h, _ = self.gru(self.embed(input_ids) * attention_mask.unsqueeze(-1))
        return TokenClassifierOutput(self.classifier(h))

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        loss = F.cross_entropy(logits.reshape(-1, 3), batch["labels"].reshape(-1), ignore_index=-100)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        labels = batch["labels"]
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), ignore_index=-100))
        pred, scored = logits.argmax(-1), labels != -100
        tp = ((pred > 0) & (labels > 0) & (pred == labels) & scored).sum()
        f1 = 2 * tp / (((pred > 0) & scored).sum() + ((labels > 0) & scored).sum()).clamp(min=1)
        self.log("val_entity_f1", f1.float())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3410)
    g = torch.Generator().manual_seed(3410)
    docs, tags = documents(150, g)
    order = torch.randperm(len(docs), generator=g)
    train_docs, val_docs = order[:120], order[120:]
    train = StridedWindows(docs[train_docs], tags[train_docs])
    val = StridedWindows(docs[val_docs], tags[val_docs])
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BiGRUTagger(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=270))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_entity_f1={m['val_entity_f1'].item():.3f} "
          f"entity_share={(tags > 0).float().mean().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
