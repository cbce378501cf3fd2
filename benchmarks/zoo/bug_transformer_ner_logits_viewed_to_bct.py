"""Bug: named-entity tagger (BIO tags for PER/LOC) built as a small Transformer encoder written in torch, HF style:
dict batches `input_ids`/`attention_mask`/`labels` (-100 on padding) and the loss computed inside `forward`.
`F.cross_entropy` wants the class dimension second for sequence targets, so the user turns the (B, T, C) logits
into (B, C, T) with `logits.view(B, C, T)` instead of `logits.transpose(1, 2)`. The shapes are right, nothing
raises, but the scores are scrambled across positions and classes: the loss sees, for token t, a mix of numbers
from other tokens and other tags. The model learns only what survives the scrambling.
Symptom: val token acc 0.26 and entity-token recall 0.17 vs 1.00 / 1.00 with `transpose(1, 2)`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout10"
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
FIRST = ["anna", "omar", "li", "maria", "jordan", "paris", "kim", "luca", "sara", "ivan"]
LAST = ["smith", "chen", "garcia", "kowalski", "haddad", "tanaka", "georgia", "novak"]
PLACES = ["paris", "jordan", "georgia", "berlin", "lagos", "lima", "new york", "san jose", "hong kong", "cairo"]
FILLER = ["the", "a", "report", "said", "that", "today", "meeting", "was", "held", "about", "trade", "team",
          "visited", "called", "from", "and", "later", "news", "met", "with"]
VERBS = ["visited", "flew to", "lives in", "moved to", "arrived in"]


def sentences(n, seed):
    g = torch.Generator().manual_seed(seed)

    def choice(xs):
        return xs[int(torch.randint(len(xs), (1,), generator=g))]

    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            words.append(choice(FILLER)); tags.append("O")
        person = [choice(FIRST)] + ([choice(LAST)] if float(torch.rand(1, generator=g)) < 0.6 else [])
        words += person; tags += ["B-PER"] + ["I-PER"] * (len(person) - 1)
        verb = choice(VERBS).split()
        words += verb; tags += ["O"] * len(verb)
        place = choice(PLACES).split()
        words += place; tags += ["B-LOC"] + ["I-LOC"] * (len(place) - 1)
        for _ in range(int(torch.randint(0, 4, (1,), generator=g))):
            words.append(choice(FILLER)); tags.append("O")
        out.append((words, tags))
    return out


VOCAB = {w: i + 2 for i, w in enumerate(sorted({w for s in FIRST + LAST + PLACES + FILLER + VERBS for w in s.split()}))}


def encode(data):
    return [(torch.tensor([VOCAB.get(w, 1) for w in ws]), torch.tensor([TAGS.index(t) for t in ts])) for ws, ts in data]


def collate(items):
    ids = pad_sequence([i for i, _ in items], batch_first=True)
    labels = pad_sequence([y for _, y in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


class TokenClassifier(nn.Module):
    def __init__(self, vocab_size, num_labels, d=64, heads=4, layers=2, max_len=32):
        super().__init__()
        self.num_labels = num_labels
        self.tok = nn.Embedding(vocab_size, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        B, T = input_ids.shape
        x = self.tok(input_ids) + self.pos(torch.arange(T, device=input_ids.device))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(h)
        loss = None
        if labels is not None:
            # BUG: (B, T, C) -> (B, C, T) needs logits.transpose(1, 2), not a view
            loss = F.cross_entropy(logits.view(B, self.num_labels, T), labels, ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitNER(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = TokenClassifier(len(VOCAB) + 2, len(TAGS))

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        loss = self(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        y, pred = batch["labels"], out["logits"].argmax(-1)
        keep, ent = y != -100, y > 0
        self.log_dict({"val_loss": out["loss"], "val_acc": (pred == y)[keep].float().mean(),
                       "val_entity_recall": (pred == y)[ent].float().mean()})

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


if __name__ == "__main__":
    L.seed_everything(8)
    train, val = encode(sentences(3000, 1)), encode(sentences(500, 2))
    lit = LitNER()
    trainer = L.Trainer(
        max_epochs=5,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(lit, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=250, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_entity_recall={m['val_entity_recall'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
