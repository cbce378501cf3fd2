"""Bug: a small Transformer-encoder NER tagger (PER / LOC / ORG / O) in the HuggingFace token-classification
style: a word-level tokenizer fitted on the training sentences, dict batches `input_ids`/`attention_mask`/`labels`
with padding labels at -100, the model computes the loss inside `forward`, AdamW with linear warm-up and decay.
Before tokenizing, the annotated corpus goes through the team's `scrub_pii` step (privacy review asked that no
person or place names sit in the training files), which replaces each *gold* PER and LOC span with a `[PER]` /
`[LOC]` placeholder - the same annotations the model is asked to predict. Train and val are both scrubbed, so the
tagger reads the answer for every person and place straight off the token; on raw text (what it will be given in
production) the placeholders never occur. Ambiguous names ("jordan" is a person, a country and a brand) are exactly
where the real model has to use context. Symptom: entity-token val accuracy 1.000 on the scrubbed val set vs 0.949
for the same model trained and validated without the gold-span scrubbing; the scrubbed model scores 0.257 on the
raw val sentences (0.950 with the fix)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout19"
TAGS = ["O", "PER", "LOC", "ORG"]
PER = ["anna", "ben", "jordan", "georgia", "paris", "austin", "carmen", "victor", "chelsea", "sydney"]
LOC = ["paris", "jordan", "georgia", "austin", "sydney", "chelsea", "oslo", "lima", "cairo", "denver"]
ORG = ["apple", "amazon", "jordan", "oracle", "shell", "target", "nike", "paris", "boeing", "intel"]
TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "yesterday {PER} flew to {LOC} with {PER} .",
    "{ORG} hired {PER} last week .",
    "{PER} visited the {ORG} office in {LOC} .",
    "shares of {ORG} fell after {PER} resigned .",
    "the mayor of {LOC} met {PER} on monday .",
    "{ANY} is great .",
    "i really like {ANY} .",
]


def make_sentences(n, g):
    pools = {"PER": PER, "LOC": LOC, "ORG": ORG}
    out = []
    for _ in range(n):
        template = TEMPLATES[int(torch.randint(len(TEMPLATES), (1,), generator=g))]
        words, tags = [], []
        for piece in template.split():
            if piece.startswith("{"):
                kind = piece[1:-1]
                if kind == "ANY":
                    kind = ["PER", "LOC", "ORG"][int(torch.randint(3, (1,), generator=g))]
                pool = pools[kind]
                words.append(pool[int(torch.randint(len(pool), (1,), generator=g))])
                tags.append(TAGS.index(kind))
            else:
                words.append(piece)
                tags.append(0)
        out.append((words, tags))
    return out


def scrub_pii(sentences):
    """Replace person and place names by placeholders before the data leaves the annotation tool."""
    scrubbed = []
    for words, tags in sentences:
        words = [f"[{TAGS[t]}]" if TAGS[t] in ("PER", "LOC") else w for w, t in zip(words, tags)]
        scrubbed.append((words, tags))
    return scrubbed


class WordTokenizer:
    def __init__(self, sentences):
        words = sorted({w for ws, _ in sentences for w in ws})
        self.vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}

    def encode(self, words):
        return [self.vocab.get(w, 1) for w in words]


class TaggingDataset(Dataset):
    def __init__(self, sentences, tok):
        self.items = [(tok.encode(ws), ts) for ws, ts in sentences]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    T = max(len(ids) for ids, _ in batch)
    out = {"input_ids": torch.zeros(len(batch), T, dtype=torch.long),
           "attention_mask": torch.zeros(len(batch), T, dtype=torch.long),
           "labels": torch.full((len(batch), T), -100)}
    for i, (ids, tags) in enumerate(batch):
        out["input_ids"][i, : len(ids)] = torch.tensor(ids)
        out["attention_mask"][i, : len(ids)] = 1
        out["labels"][i, : len(ids)] = torch.tensor(tags)
    return out


class EncoderForTokenClassification(nn.Module):
    def __init__(self, vocab_size, num_labels, d=64, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.pos = nn.Embedding(32, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.embed(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(h)
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitTagger(L.LightningModule):
    def __init__(self, vocab_size):
        super().__init__()
        self.model = EncoderForTokenClassification(vocab_size, len(TAGS))

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        entity = batch["labels"] > 0
        acc = (out["logits"].argmax(-1)[entity] == batch["labels"][entity]).float().mean()
        self.log("val_loss", out["loss"])
        self.log("val_entity_acc", acc)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warmup = int(0.1 * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(1907)
    g = torch.Generator().manual_seed(1907)
    raw_train, raw_val = make_sentences(2500, g), make_sentences(500, g)
    train_sents, val_sents = scrub_pii(raw_train), scrub_pii(raw_val)
    tok = WordTokenizer(train_sents)
    train_dl = DataLoader(TaggingDataset(train_sents, tok), batch_size=32, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(TaggingDataset(val_sents, tok), batch_size=250, collate_fn=collate)
    lit = LitTagger(len(tok.vocab))
    trainer = L.Trainer(max_epochs=4, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_ner_scrub"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, train_dl, val_dl)
    print(f"SYMPTOM val_entity_acc={trainer.callback_metrics['val_entity_acc'].item():.3f}")
    lit.model.eval()
    with torch.no_grad():
        batch = collate(TaggingDataset(raw_val, tok).items)
        entity = batch["labels"] > 0
        raw_acc = (lit.model(**batch)["logits"].argmax(-1)[entity] == batch["labels"][entity]).float().mean()
    print(f"SYMPTOM raw_text_val_entity_acc={raw_acc.item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
