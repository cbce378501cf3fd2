"""Bug: a bag-of-tokens sequence classifier on synthetic variable-length sequences (vocab 24, length 6-40, from a
seeded torch.Generator): label 1 when token 3 occurs more often than token 7. To get balanced classes the data
builder rejection-samples 1000 sequences of each class and concatenates them (all negatives first). Batches are HF-
style dicts from a custom collate (`input_ids` right-padded with 0, `attention_mask`, `labels`); the model is an
embedding, masked mean pooling and a 2-layer head with a `.logits` output. To limit padding the DataModule uses a
fastai-style "sortish" bucket batch sampler: chunk the indices into buckets of 8 batches, sort each bucket by length,
cut it into batches and shuffle the batch order.

The sampler forgot the first step of the recipe, shuffling the indices before chunking, so each bucket is a run of
consecutive indices of the class-sorted dataset; only the one bucket that straddles index 1000 mixes classes, so at
least 55 of the 63 training batches contain a single class. Each step pushes the head towards one class; the average
loss still falls and validation (a plain loader) looks reasonable. Symptom after 3 epochs of Adam (lr 1e-3): val
accuracy 0.832, val loss 0.474 vs 0.924 and 0.267 with `torch.randperm` before chunking."""

from types import SimpleNamespace

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Sampler

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout26"
VOCAB = 24


def make_sequences(n_per_class, g):
    by_class = {0: [], 1: []}
    while min(len(v) for v in by_class.values()) < n_per_class:
        length = int(torch.randint(6, 41, (1,), generator=g))
        seq = torch.randint(1, VOCAB, (length,), generator=g)
        label = int((seq == 3).sum() > (seq == 7).sum())
        if len(by_class[label]) < n_per_class:
            by_class[label].append(seq)
    return [{"input_ids": s, "labels": c} for c in (0, 1) for s in by_class[c]]


def collate(examples):
    ids = pad_sequence([ex["input_ids"] for ex in examples], batch_first=True, padding_value=0)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(),
            "labels": torch.tensor([ex["labels"] for ex in examples])}


class SortishBatchSampler(Sampler):
    def __init__(self, lengths, batch_size, generator):
        self.lengths, self.batch_size, self.g = lengths, batch_size, generator

    def __iter__(self):
        indices = list(range(len(self.lengths)))
        bucket = self.batch_size * 8
        batches = []
        for start in range(0, len(indices), bucket):
            chunk = sorted(indices[start:start + bucket], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for j in torch.randperm(len(batches), generator=self.g).tolist():
            yield batches[j]

    def __len__(self):
        return -(-len(self.lengths) // self.batch_size)


class TokenData(L.LightningDataModule):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(13)
        self.train_set = make_sequences(1000, g)
        self.val_set = make_sequences(250, g)
        self.g = g

    def train_dataloader(self):
        lengths = [len(ex["input_ids"]) for ex in self.train_set]
        return DataLoader(self.train_set, batch_sampler=SortishBatchSampler(lengths, 32, self.g), collate_fn=collate)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=128, collate_fn=collate)


class BagOfTokens(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, 32, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        return SimpleNamespace(logits=self.head(pooled))

    def training_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(out.logits, batch["labels"])
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BagOfTokens(), datamodule=TokenData())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
