"""Bug: review sentiment with an Embedding + bidirectional GRU + masked max-pool classifier (dict batches
`input_ids`/`attention_mask`/`labels`, padding 0, Adam + ReduceLROnPlateau on val loss). The reviews are raw text
(mixed case, "GREAT!", "Awful."). The training set goes through `normalize` (lower-case, strip punctuation) before
the word tokenizer fitted on the normalised training texts, but the validation dataset is built with the default
`preprocess=None` (the call was copied from when the validation file came pre-cleaned): every capitalised or
punctuated validation word - about 40 % of them, cue words included - becomes [UNK]. Training looks fine, validation
is a different distribution. Symptom: val loss 0.40 / val acc 0.83 vs 0.28 / 0.91 when the validation texts are
normalised too."""

import re

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout9"
POS = ["great", "excellent", "love", "perfect", "amazing", "recommend", "happy", "works", "sturdy", "fast"]
NEG = ["awful", "broken", "refund", "terrible", "waste", "poor", "returned", "disappointed", "cheap", "slow"]
FILL = ["the", "a", "it", "this", "product", "i", "was", "is", "and", "with", "for", "my", "after", "day", "box",
        "use", "very", "really", "quite", "just", "but", "to", "of", "in", "on", "battery", "size", "color", "price"]


def make_reviews(n, seed):
    """(raw text, stars 1-5): cue words of the star's polarity among filler, mixed case, punctuation."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        stars = int(torch.randint(1, 6, (1,), generator=g))
        polarity = 0.0 if stars == 3 else (1.0 if stars >= 4 else -1.0)
        if float(torch.rand(1, generator=g)) < 0.05:
            polarity = -polarity
        words = []
        for _ in range(int(torch.randint(8, 25, (1,), generator=g))):
            r = float(torch.rand(1, generator=g))
            if r < 0.25:
                pool = POS if (polarity > 0 or (polarity == 0 and r < 0.125)) else NEG
                w = pool[int(torch.randint(len(pool), (1,), generator=g))]
            elif r < 0.28:
                pool = NEG if polarity > 0 else POS
                w = pool[int(torch.randint(len(pool), (1,), generator=g))]
            else:
                w = FILL[int(torch.randint(len(FILL), (1,), generator=g))]
            style = float(torch.rand(1, generator=g))
            w = w.upper() if style < 0.15 else (w.capitalize() if style < 0.35 else w)
            words.append(w + ("!" if float(torch.rand(1, generator=g)) < 0.1 else ""))
        out.append((" ".join(words) + ".", stars))
    return out


def normalize(text):
    return re.sub(r"[^a-z ]", "", text.lower())


class WordTokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}

    def encode(self, text):
        return [self.vocab.get(w, 1) for w in text.split()]


class ReviewDataset(Dataset):
    def __init__(self, reviews, tokenizer, preprocess=None):
        preprocess = preprocess or (lambda t: t)
        kept = [(t, s) for t, s in reviews if s != 3]
        self.items = [(torch.tensor(tokenizer.encode(preprocess(t))), int(s >= 4)) for t, s in kept]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    for i, (ids, _) in enumerate(batch):
        input_ids[i, : len(ids)] = ids
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long(),
            "labels": torch.tensor([y for _, y in batch])}


class BiGRUClassifier(L.LightningModule):
    def __init__(self, vocab_size, dim=64, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.gru = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(2 * hidden, 2)

    def forward(self, input_ids, attention_mask):
        states, _ = self.gru(self.embed(input_ids))
        states = states.masked_fill(attention_mask[..., None] == 0, -1e4)
        return self.head(self.dropout(states.max(dim=1).values))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(9104)
    train_raw, val_raw = make_reviews(2000, 0), make_reviews(400, 1)
    tokenizer = WordTokenizer([normalize(t) for t, _ in train_raw])
    train_set = ReviewDataset(train_raw, tokenizer, preprocess=normalize)
    val_set = ReviewDataset(val_raw, tokenizer)
    train = DataLoader(train_set, batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(val_set, batch_size=64, collate_fn=collate)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BiGRUClassifier(len(tokenizer.vocab)), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
