"""Bug: part-of-speech tagger (Embedding + BiGRU + linear head, dict batches `input_ids`/`attention_mask`/`labels`
with -100 on padding) trained on a corpus stored one sentence per line in the classic `word/TAG` format. The reader
takes the tags with `tok.rsplit("/", 1)[1]` but keeps the raw `word/TAG` string as the token, so the vocabulary is
built over `the/DET`, `run/NOUN`, `run/VERB`... and every input token spells out its own label. The user does not
notice because validation comes from the same files and looks perfect; on untagged text (what the tagger will see
in use) every token is [UNK].
Symptom: val acc 0.997, above the ceiling set by the corpus's 5 % annotator slips (the fix: 0.957), and accuracy on
the same validation sentences given as plain words 0.042 (the fix: 0.957)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout10"
LEX = {
    "DET": ["the", "a", "this", "that", "every", "my"],
    "ADJ": ["big", "red", "old", "quiet", "fast", "happy", "cold"],
    "NOUN": ["dog", "cat", "car", "house", "river", "child", "book", "teacher", "run", "watch", "play", "light"],
    "VERB": ["sees", "likes", "finds", "run", "watch", "play", "light", "takes", "moves"],
    "ADV": ["quickly", "often", "never", "slowly"],
    "PREP": ["near", "under", "with", "behind"],
    "PRON": ["they", "we", "you", "i"],
}
TAGS = sorted(LEX)


def corpus(n, seed):
    """Hand-tagged lines like 'the/DET old/ADJ dog/NOUN sees/VERB a/DET car/NOUN near/PREP the/DET river/NOUN'."""
    g = torch.Generator().manual_seed(seed)

    def pick(tag):
        word = LEX[tag][int(torch.randint(len(LEX[tag]), (1,), generator=g))]
        if float(torch.rand(1, generator=g)) < 0.05:  # annotator slips, as in any hand-tagged corpus
            tag = TAGS[int(torch.randint(len(TAGS), (1,), generator=g))]
        return f"{word}/{tag}"

    def noun_phrase():
        out = [pick("DET")]
        while float(torch.rand(1, generator=g)) < 0.4:
            out.append(pick("ADJ"))
        return out + [pick("NOUN")]

    lines = []
    for _ in range(n):
        subj = [pick("PRON")] if float(torch.rand(1, generator=g)) < 0.3 else noun_phrase()
        words = subj + ([pick("ADV")] if float(torch.rand(1, generator=g)) < 0.3 else []) + [pick("VERB")]
        words += noun_phrase()
        if float(torch.rand(1, generator=g)) < 0.5:
            words += [pick("PREP")] + noun_phrase()
        lines.append(" ".join(words))
    return lines


def read_tagged(lines):
    sents = []
    for line in lines:
        toks = line.split()
        tags = [t.rsplit("/", 1)[1] for t in toks]
        sents.append((toks, tags))  # BUG: tokens keep their "/TAG" suffix; should be t.rsplit("/", 1)[0]
    return sents


def build_vocab(sents):
    vocab = {"[PAD]": 0, "[UNK]": 1}
    for toks, _ in sents:
        for t in toks:
            vocab.setdefault(t, len(vocab))
    return vocab


def encode(sents, vocab):
    return [(torch.tensor([vocab.get(t, 1) for t in toks]), torch.tensor([TAGS.index(x) for x in tags]))
            for toks, tags in sents]


def collate(items):
    ids = pad_sequence([i for i, _ in items], batch_first=True, padding_value=0)
    labels = pad_sequence([y for _, y in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


class GRUTagger(L.LightningModule):
    def __init__(self, vocab_size, dim=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.rnn = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * dim, len(TAGS))

    def forward(self, input_ids, attention_mask, labels=None):
        h, _ = self.rnn(self.emb(input_ids))
        logits = self.head(h)
        loss = None if labels is None else F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        keep = batch["labels"] != -100
        acc = (out["logits"].argmax(-1) == batch["labels"])[keep].float().mean()
        self.log_dict({"val_loss": out["loss"], "val_acc": acc}, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@torch.no_grad()
def plain_text_accuracy(model, lines, vocab):
    """Tag the validation sentences given as plain words, as the tagger is used."""
    model.eval()
    sents = [([t.rsplit("/", 1)[0] for t in line.split()], [t.rsplit("/", 1)[1] for t in line.split()])
             for line in lines]
    batch = collate(encode(sents, vocab))
    logits = model(**batch)["logits"]
    keep = batch["labels"] != -100
    return (logits.argmax(-1) == batch["labels"])[keep].float().mean().item()


if __name__ == "__main__":
    L.seed_everything(5)
    train_lines, val_lines = corpus(3000, 11), corpus(400, 12)
    train_sents, val_sents = read_tagged(train_lines), read_tagged(val_lines)
    vocab = build_vocab(train_sents)
    model = GRUTagger(len(vocab))
    trainer = L.Trainer(
        max_epochs=5,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model,
                DataLoader(encode(train_sents, vocab), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(encode(val_sents, vocab), batch_size=200, collate_fn=collate))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"SYMPTOM plain_text_acc={plain_text_accuracy(model, val_lines, vocab):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
