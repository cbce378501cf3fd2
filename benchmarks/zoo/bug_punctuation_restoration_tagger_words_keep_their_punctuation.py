"""Bug: punctuation restoration for ASR transcripts, framed as token classification (for each word: the mark that
follows it, O / COMMA / PERIOD / QUESTION) with a BiGRU tagger on HF-style dict batches. The training and validation
examples are made from punctuated text: the labels are read off each word's last character, but the words themselves
are only lower-cased (`text.lower().split()`), not stripped of the punctuation. So "home." and "home" are different
vocabulary entries and the input token carries its own label. Validation looks perfect; on real, unpunctuated
transcripts the plain word forms were only ever seen with label O and the tagger restores almost nothing. Symptom:
val macro-F1 1.00 but 0.11 on unpunctuated transcripts, vs 1.00 on val and 1.00 on transcripts when the words are
stripped with `w.rstrip(",.?")`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout15"
LABELS = {"O": 0, ",": 1, ".": 2, "?": 3}
WH = ["what", "where", "when", "why", "how", "who"]
MARKERS = ["however", "well", "so", "yes", "no", "actually"]
SUBJ = ["i", "you", "we", "they", "she", "he", "the team", "my sister", "the driver", "our neighbour"]
VERB = ["saw", "left", "called", "fixed", "bought", "found", "visited", "painted", "missed", "cooked"]
OBJ = ["the car", "a letter", "the house", "dinner", "the bus", "the old bridge", "a new phone", "the garden",
       "the report", "lunch"]
TAIL = ["yesterday", "at home", "in the morning", "last week", "after work", "again", "on monday", "with care"]


def sentence(g):
    pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]
    r = float(torch.rand(1, generator=g))
    if r < 0.3:
        s = f"{pick(WH)} did {pick(SUBJ)} {pick(VERB).rstrip('ed')} {pick(OBJ)}?"
    else:
        s = f"{pick(SUBJ)} {pick(VERB)} {pick(OBJ)}"
        if float(torch.rand(1, generator=g)) < 0.5:
            s += f" {pick(TAIL)}"
        if float(torch.rand(1, generator=g)) < 0.35:
            s += f", but {pick(SUBJ)} {pick(VERB)} {pick(OBJ)}"
        s += "."
        if float(torch.rand(1, generator=g)) < 0.3:
            s = f"{pick(MARKERS)}, " + s
    return s.capitalize()


def make_texts(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [" ".join(sentence(g) for _ in range(int(torch.randint(2, 5, (1,), generator=g)))) for _ in range(n)]


def words_and_labels(text):
    words, labels = [], []
    for w in text.lower().split():
        words.append(w)
        labels.append(LABELS.get(w[-1], 0))
    return words, labels


class Vocab:
    def __init__(self, texts):
        self.itos = ["<pad>", "<unk>"] + sorted({w for t in texts for w in words_and_labels(t)[0]})
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def encode(self, words):
        return [self.stoi.get(w, 1) for w in words]


def encode_all(texts, vocab):
    out = []
    for t in texts:
        words, labels = words_and_labels(t)
        out.append((torch.tensor(vocab.encode(words)), torch.tensor(labels)))
    return out


def collate(items):
    n = max(len(x) for x, _ in items)
    ids = torch.zeros(len(items), n, dtype=torch.long)
    labels = torch.full((len(items), n), -100, dtype=torch.long)
    for i, (x, y) in enumerate(items):
        ids[i, :len(x)] = x
        labels[i, :len(y)] = y
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


class PunctTagger(L.LightningModule):
    def __init__(self, vocab_size, dim=64, hidden=96, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.rnn = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(2 * hidden, len(LABELS))

    def forward(self, input_ids, attention_mask, labels=None):
        h, _ = self.rnn(self.drop(self.embed(input_ids)))
        logits = self.head(self.drop(h))
        loss = None if labels is None else F.cross_entropy(logits.reshape(-1, len(LABELS)), labels.reshape(-1))
        return loss, logits

    def training_step(self, batch, batch_idx):
        loss, _ = self(**batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits = self(**batch)
        self.log("val_loss", loss)
        self.log("val_f1", macro_f1(logits, batch["labels"]), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def macro_f1(logits, labels):
    keep = labels != -100
    pred, gold = logits.argmax(-1)[keep], labels[keep]
    f1s = []
    for c in (1, 2, 3):
        tp = ((pred == c) & (gold == c)).sum().float()
        prec = tp / (pred == c).sum().clamp_min(1)
        rec = tp / (gold == c).sum().clamp_min(1)
        f1s.append(2 * prec * rec / (prec + rec).clamp_min(1e-9))
    return torch.stack(f1s).mean()


@torch.no_grad()
def transcript_f1(model, texts, vocab):
    """Real use: ASR output has no punctuation at all."""
    model.eval()
    items = []
    for t in texts:
        _, labels = words_and_labels(t)
        plain = [w.rstrip(",.?") for w in t.lower().split()]
        items.append((torch.tensor(vocab.encode(plain)), torch.tensor(labels)))
    b = collate(items)
    return macro_f1(model(**b)[1], b["labels"]).item()


if __name__ == "__main__":
    L.seed_everything(2024)
    train_texts, val_texts, asr_texts = make_texts(1500, 11), make_texts(300, 12), make_texts(300, 13)
    vocab = Vocab(train_texts)
    train = DataLoader(encode_all(train_texts, vocab), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(encode_all(val_texts, vocab), batch_size=150, collate_fn=collate)
    model = PunctTagger(len(vocab.itos))
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="punct_restoration"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, val)
    print(f"SYMPTOM val_macro_f1={trainer.callback_metrics['val_f1'].item():.3f}")
    print(f"SYMPTOM transcript_macro_f1={transcript_f1(model, asr_texts, vocab):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
