"""Bug: named-entity tagger (word embeddings + gazetteer features -> BiGRU -> per-token tag head, tags O/PER/LOC/ORG,
dict batches with `labels` padded with -100). A classic NER feature is a gazetteer: for every token, one flag per
entity type saying "this word is a known PER / LOC / ORG name". The user has no external name lists, so
`build_gazetteer` collects every word that is tagged as an entity anywhere in the annotated corpus - and it is called
once on the whole corpus in the data preparation, before `train_test_split`. The validation sentences' own gold tags
are thereby written into their input features: a validation name never seen in training is flagged with exactly its
gold type. Names are an open class (most validation names are new), so on honest data the tagger has to rely on
context cues ("mr X said", "in X", "X corp"), rare common nouns make unknown words no giveaway.

Symptom: val entity F1 0.997 with the corpus-wide gazetteer vs 0.58 when the gazetteer is built from the training split
only (the honest number; the flags then cover only names seen in training)."""

from collections import Counter

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout14"
TAGS = ["O", "PER", "LOC", "ORG"]
FILLER = ("the a of and to was is for on with by that this it as were be has had after before when while over "
          "under about report yesterday today meeting new old big small city team group people work plan deal "
          "news time year week day morning evening price market share office staff").split()
AMBIGUOUS = {"PER": ["may", "bill", "rose"], "LOC": ["bath", "nice", "reading"], "ORG": ["apple", "shell", "target"]}


def make_corpus(n, seed):
    """Sentences of filler words with 1-3 entities; each entity type has (noisy) context cues around it."""
    g = torch.Generator().manual_seed(seed)

    def pick(seq):
        return seq[int(torch.randint(0, len(seq), (1,), generator=g))]

    def rand():
        return float(torch.rand(1, generator=g))

    pools = {t: [f"{t.lower()}{i}" for i in range(5000)] for t in ("PER", "LOC", "ORG")}
    nouns = [f"noun{i}" for i in range(8000)]  # open-class common words: rare words are not all names
    cues = {"PER": (["mr", "mrs", "dr", "minister"], ["said", "told", "added"]),
            "LOC": (["in", "near", "from", "at"], ["city", "region", "port"]),
            "ORG": (["at", "with", "by"], ["inc", "corp", "ltd"])}
    corpus = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
                r = rand()
                if r < 0.65:
                    w = pick(FILLER)
                elif r < 0.9:
                    w = pick(nouns)
                else:  # a cue word out of place: cues are only a hint
                    w = pick(cues[pick(list(cues))][int(r < 0.95)])
                words.append(w), tags.append("O")
            etype = pick(list(cues))
            before, after = cues[etype]
            if rand() < 0.6:
                words.append(pick(before)), tags.append("O")
            name = pick(AMBIGUOUS[etype]) if rand() < 0.1 else pick(pools[etype])
            words.append(name), tags.append(etype)
            if rand() < 0.4:
                words.append(pick(after)), tags.append("O")
        for _ in range(int(torch.randint(0, 4, (1,), generator=g))):
            r = rand()
            w = pick(FILLER) if r < 0.6 else pick(nouns) if r < 0.95 else pick(sum(AMBIGUOUS.values(), []))
            words.append(w), tags.append("O")
        corpus.append((words, tags))
    return corpus


def build_gazetteer(corpus):
    gaz = {t: set() for t in TAGS[1:]}
    for words, tags in corpus:
        for w, t in zip(words, tags):
            if t != "O":
                gaz[t].add(w)
    return gaz


class Encoder:
    def __init__(self, train_corpus, gazetteer, min_freq=2):
        counts = Counter(w for words, _ in train_corpus for w in words)
        self.itos = ["<pad>", "<unk>"] + sorted(w for w, c in counts.items() if c >= min_freq)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.gazetteer = gazetteer

    def __call__(self, words, tags):
        ids = torch.tensor([self.stoi.get(w, 1) for w in words])
        gaz = torch.tensor([[float(w in self.gazetteer[t]) for t in TAGS[1:]] for w in words])
        return {"input_ids": ids, "gazetteer": gaz, "labels": torch.tensor([TAGS.index(t) for t in tags])}


def collate(items):
    T = max(len(it["input_ids"]) for it in items)
    out = {"input_ids": torch.zeros(len(items), T, dtype=torch.long), "gazetteer": torch.zeros(len(items), T, 3),
           "attention_mask": torch.zeros(len(items), T, dtype=torch.long),
           "labels": torch.full((len(items), T), -100, dtype=torch.long)}
    for i, it in enumerate(items):
        n = len(it["input_ids"])
        out["input_ids"][i, :n], out["gazetteer"][i, :n] = it["input_ids"], it["gazetteer"]
        out["attention_mask"][i, :n], out["labels"][i, :n] = 1, it["labels"]
    return out


class GazetteerBiGRUTagger(L.LightningModule):
    def __init__(self, vocab_size, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, 64, padding_idx=0)
        self.gru = nn.GRU(64 + 3, 64, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(128, len(TAGS))
        self.val_counts = torch.zeros(3)

    def forward(self, input_ids, gazetteer, attention_mask):
        x = torch.cat([self.drop(self.embed(input_ids)), gazetteer], dim=-1)
        x = nn.utils.rnn.pack_padded_sequence(x, attention_mask.sum(1), batch_first=True, enforce_sorted=False)
        h, _ = nn.utils.rnn.pad_packed_sequence(self.gru(x)[0], batch_first=True, total_length=input_ids.size(1))
        return self.head(self.drop(h))

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["gazetteer"], batch["attention_mask"])
        loss = F.cross_entropy(logits.reshape(-1, len(TAGS)), batch["labels"].reshape(-1), ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["gazetteer"], batch["attention_mask"])
        labels = batch["labels"]
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, len(TAGS)), labels.reshape(-1), ignore_index=-100))
        pred, valid = logits.argmax(-1), labels != -100
        tp = ((pred == labels) & (labels > 0) & valid).sum()
        self.val_counts += torch.stack([tp, ((pred > 0) & valid).sum(), ((labels > 0) & valid).sum()]).float()

    def on_validation_epoch_start(self):
        self.val_counts = torch.zeros(3)

    def on_validation_epoch_end(self):
        tp, n_pred, n_gold = self.val_counts
        self.log("val_f1", 2 * tp / (n_pred + n_gold).clamp(min=1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3)
    corpus = make_corpus(4000, seed=11)
    gazetteer = build_gazetteer(corpus)
    train_corpus, val_corpus = train_test_split(corpus, test_size=0.2, random_state=0)
    encode = Encoder(train_corpus, gazetteer)
    train_ds = [encode(*s) for s in train_corpus]
    val_ds = [encode(*s) for s in val_corpus]

    model = GazetteerBiGRUTagger(len(encode.itos))
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="gazetteer_ner"), log_every_n_steps=20)
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val_ds, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM val_entity_f1={trainer.callback_metrics['val_f1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
