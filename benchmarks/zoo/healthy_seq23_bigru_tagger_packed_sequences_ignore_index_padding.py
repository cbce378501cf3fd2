"""Healthy: a bidirectional-GRU sequence labeller on synthetic "sentences" of variable length (4-20 tokens, vocab 30,
from a seeded torch.Generator). Each token's tag is its word class (id % 3) shifted to a second set of three tags
when a "negation" token (id 2) occurred in the previous two positions, so the tagger needs left context; the model
is bidirectional, which is fine for labelling (no next-element prediction).

Done right: a custom collate pads ids with 0 and tags with -100, the GRU runs on `pack_padded_sequence` with the true
lengths (enforce_sorted=False, so no reordering of ids vs. labels), outputs are unpacked back in the original order,
and `cross_entropy(..., ignore_index=-100)` averages over real tokens only; the accuracy is masked the same way. The
validation corpus is sampled from the same rule with the same id map. Symptom measured: masked val token accuracy
~1.00 (val loss 0.002) after 6 epochs."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout23"
VOCAB, NEG, N_TAGS = 30, 2, 6


def make_corpus(n, g):
    data = []
    for _ in range(n):
        length = int(torch.randint(4, 21, (1,), generator=g))
        ids = torch.randint(1, VOCAB, (length,), generator=g)
        tags = ids % 3
        for t in range(length):
            if (ids[max(0, t - 2):t] == NEG).any():
                tags[t] += 3
        data.append((ids, tags))
    return data


def collate(items):
    lengths = torch.tensor([len(ids) for ids, _ in items])
    T = int(lengths.max())
    ids = torch.zeros(len(items), T, dtype=torch.long)
    tags = torch.full((len(items), T), -100)
    for i, (x, y) in enumerate(items):
        ids[i, :len(x)], tags[i, :len(y)] = x, y
    return {"input_ids": ids, "lengths": lengths, "labels": tags}


class GRUTagger(L.LightningModule):
    def __init__(self, d=32, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=0)
        self.gru = nn.GRU(d, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, N_TAGS)

    def forward(self, input_ids, lengths):
        packed = pack_padded_sequence(self.emb(input_ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=input_ids.shape[1])
        return self.head(out)

    def _step(self, batch):
        logits = self(batch["input_ids"], batch["lengths"])
        labels = batch["labels"]
        loss = F.cross_entropy(logits.reshape(-1, N_TAGS), labels.reshape(-1), ignore_index=-100)
        real = labels != -100
        acc = (logits.argmax(-1)[real] == labels[real]).float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"val_loss": loss, "val_acc": acc})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2303)
    g = torch.Generator().manual_seed(231)
    train, val = make_corpus(1500, g), make_corpus(300, g)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GRUTagger(), DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=150, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
