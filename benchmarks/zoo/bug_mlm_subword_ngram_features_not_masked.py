"""Bug: a small masked LM with fastText-style subword features. Each word is embedded as its word vector plus the
sum of its hashed character-trigram vectors (so rare words still get a representation), then a 2-layer Transformer
encoder and an MLM head; HuggingFace-style dict batches and the loss inside the model. The dataset precomputes
`ngram_ids` for every word in `__getitem__`; the MLM collator (a port of `DataCollatorForLanguageModeling`) masks
`input_ids` (80 % [MASK], 10 % random, 10 % kept) and builds `labels`, but it knows nothing about the extra
`ngram_ids` field, which still spells out the original word at every masked position. The model learns to read the
masked word back from its trigrams. Symptom: val masked-token accuracy 1.00 (val loss 0.03) vs 0.31 (loss 2.49)
with the n-gram features of masked/replaced positions rewritten too - the task is topic-level guessing, 1.00 is
impossible without seeing the answer."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout11"
PAD, MASK, N_SPECIAL = 0, 1, 2
N_TOPICS, WORDS_PER_TOPIC, SEQ, N_BUCKETS, MAX_NGRAMS = 8, 20, 16, 997, 8


def make_lexicon(seed):
    g = torch.Generator().manual_seed(seed)
    letters = "abcdefghijklmnop"
    words = set()
    while len(words) < N_TOPICS * WORDS_PER_TOPIC:
        n = int(torch.randint(3, 8, (1,), generator=g))
        words.add("".join(letters[int(i)] for i in torch.randint(0, len(letters), (n,), generator=g)))
    return sorted(words)


def trigram_ids(word):
    w = f"<{word}>"
    ids = [1 + (sum(ord(c) * 31 ** k for k, c in enumerate(w[i:i + 3])) % (N_BUCKETS - 1)) for i in range(len(w) - 2)]
    return (ids + [0] * MAX_NGRAMS)[:MAX_NGRAMS]


def make_sentences(n, seed):
    """Each sentence has a topic; its words come from that topic's 20 words with Zipf-like frequencies."""
    g = torch.Generator().manual_seed(seed)
    zipf = 1.0 / torch.arange(1, WORDS_PER_TOPIC + 1).float()
    topics = torch.randint(0, N_TOPICS, (n,), generator=g)
    ranks = torch.multinomial(zipf, n * SEQ, replacement=True, generator=g).view(n, SEQ)
    return N_SPECIAL + topics[:, None] * WORDS_PER_TOPIC + ranks


class Corpus(Dataset):
    def __init__(self, ids, ngram_table):
        self.ids, self.ngram_table = ids, ngram_table

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i]
        return {"input_ids": ids, "ngram_ids": self.ngram_table[ids], "attention_mask": torch.ones_like(ids)}


class MLMCollator:
    def __init__(self, vocab_size, prob=0.15):
        self.vocab_size, self.prob = vocab_size, prob

    def __call__(self, items):
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        ids = batch["input_ids"].clone()
        labels = ids.clone()
        chosen = torch.rand(ids.shape) < self.prob
        labels[~chosen] = -100
        to_mask = chosen & (torch.rand(ids.shape) < 0.8)
        ids[to_mask] = MASK
        to_random = chosen & ~to_mask & (torch.rand(ids.shape) < 0.5)
        ids[to_random] = torch.randint(N_SPECIAL, self.vocab_size, (int(to_random.sum()),))
        batch["input_ids"], batch["labels"] = ids, labels
        return batch


class SubwordMLM(nn.Module):
    def __init__(self, vocab_size, d=64):
        super().__init__()
        self.word = nn.Embedding(vocab_size, d, padding_idx=PAD)
        self.ngram = nn.Embedding(N_BUCKETS, d, padding_idx=0)
        self.pos = nn.Embedding(SEQ, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab_size)

    def forward(self, input_ids, ngram_ids, attention_mask, labels=None):
        x = self.word(input_ids) + self.ngram(ngram_ids).sum(2) + self.pos.weight[: input_ids.shape[1]]
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        logits = self.head(h)
        loss = None if labels is None else F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitMLM(L.LightningModule):
    def __init__(self, vocab_size, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = SubwordMLM(vocab_size)

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        sel = batch["labels"] != -100
        acc = (out["logits"].argmax(-1)[sel] == batch["labels"][sel]).float().mean()
        self.log("val_loss", out["loss"], prog_bar=True)
        self.log("val_mlm_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(23)
    words = make_lexicon(3)
    vocab_size = N_SPECIAL + len(words)
    ngram_table = torch.zeros(vocab_size, MAX_NGRAMS, dtype=torch.long)
    for i, w in enumerate(words):
        ngram_table[N_SPECIAL + i] = torch.tensor(trigram_ids(w))
    collate = MLMCollator(vocab_size)
    train = DataLoader(Corpus(make_sentences(3000, 1), ngram_table), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(Corpus(make_sentences(600, 2), ngram_table), batch_size=200, collate_fn=collate)
    lit = LitMLM(vocab_size)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="subword_mlm"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(lit, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val masked-token acc {m['val_mlm_acc'].item():.3f} val_loss {m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
