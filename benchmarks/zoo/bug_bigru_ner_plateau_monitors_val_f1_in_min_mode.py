"""Bug: a BiGRU NER tagger (BIO tags for PER/LOC/ORG, padded labels = -100, class-weighted cross-entropy so the
entity tags are not drowned by "O") on synthetic sentences whose ambiguous names ("jordan", "paris", ...) get their
entity type from a context word a few tokens before them. The learning rate is driven by ReduceLROnPlateau "on the metric we
care about": `{"scheduler": ReduceLROnPlateau(opt, factor=0.3, patience=1), "monitor": "val_f1"}` - with the
scheduler's default `mode="min"`. Every epoch in which F1 improves counts as "no improvement", so the learning rate
is cut by 0.3 every second epoch while the model is still learning.
Symptom: learning rate 2e-3 -> 1.6e-5 by the last epoch and val entity-token F1 0.80, vs F1 0.975 (lr never cut)
with `mode="max"`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout12"

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
FILLER = [f"w{i}" for i in range(60)]
FIRST = [f"first{i}" for i in range(25)]
LAST = [f"last{i}" for i in range(25)]
CITY = [f"city{i}" for i in range(25)]
COMPANY = [f"co{i}" for i in range(20)]
AMBIG = ["jordan", "paris", "florence", "chelsea", "austin", "victoria", "dakota", "sydney", "kent", "madison",
         "lincoln", "washington"]
CUES = {"PER": ["mr", "ms", "dr", "met", "with"], "LOC": ["in", "to", "from", "near", "visited"],
        "ORG": ["at", "joined", "for", "by", "sued"]}
SUFFIX = ["inc", "corp", "group"]


def make_sentence(g):
    def pick(xs):
        return xs[int(torch.randint(len(xs), (1,), generator=g))]

    words, tags = [], []
    for _ in range(int(torch.randint(2, 5, (1,), generator=g))):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            words.append(pick(FILLER))
            tags.append("O")
        kind = pick(["PER", "LOC", "ORG"])
        words.append(pick(CUES[kind]))
        tags.append("O")
        for _ in range(int(torch.randint(0, 3, (1,), generator=g))):
            words.append(pick(FILLER))
            tags.append("O")
        head = pick(AMBIG) if float(torch.rand(1, generator=g)) < 0.7 else \
            pick({"PER": FIRST, "LOC": CITY, "ORG": COMPANY}[kind])
        span = [head]
        if kind == "PER" and float(torch.rand(1, generator=g)) < 0.6:
            span.append(pick(LAST))
        if kind == "ORG" and float(torch.rand(1, generator=g)) < 0.5:
            span.append(pick(SUFFIX))
        if kind == "LOC" and float(torch.rand(1, generator=g)) < 0.2:
            span.append("city")
        words += span
        tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1)
    return words, tags


def build(n, g, vocab=None):
    sents = [make_sentence(g) for _ in range(n)]
    if vocab is None:
        vocab = {"<pad>": 0, "<unk>": 1}
        for words, _ in sents:
            for w in words:
                vocab.setdefault(w, len(vocab))
    tag_id = {t: i for i, t in enumerate(TAGS)}
    data = [(torch.tensor([vocab.get(w, 1) for w in ws]), torch.tensor([tag_id[t] for t in ts])) for ws, ts in sents]
    return data, vocab


def collate(batch):
    ids = pad_sequence([b[0] for b in batch], batch_first=True, padding_value=0)
    labels = pad_sequence([b[1] for b in batch], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": ids != 0, "labels": labels}


class BiGRUTagger(L.LightningModule):
    def __init__(self, vocab_size, class_weights, d=48, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(2 * d, len(TAGS))
        self.register_buffer("class_weights", class_weights)
        self.val_tp = self.val_fp = self.val_fn = 0

    def forward(self, input_ids, attention_mask):
        h, _ = self.gru(self.drop(self.embed(input_ids)))
        return self.head(self.drop(h))

    def _loss(self, logits, labels):
        return F.cross_entropy(logits.reshape(-1, len(TAGS)), labels.reshape(-1), weight=self.class_weights,
                               ignore_index=-100)

    def training_step(self, batch, batch_idx):
        loss = self._loss(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def on_validation_epoch_start(self):
        self.val_tp = self.val_fp = self.val_fn = 0

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        self.log("val_loss", self._loss(logits, labels))
        keep = labels != -100
        pred, gold = logits.argmax(-1)[keep], labels[keep]
        self.val_tp += int(((pred == gold) & (gold != 0)).sum())
        self.val_fp += int(((pred != gold) & (pred != 0)).sum())
        self.val_fn += int(((pred != gold) & (gold != 0)).sum())

    def on_validation_epoch_end(self):
        f1 = 2 * self.val_tp / max(1, 2 * self.val_tp + self.val_fp + self.val_fn)
        self.log("val_f1", float(f1))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.3, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_f1"}}


def main():
    L.seed_everything(2024)
    g = torch.Generator().manual_seed(2024)
    train, vocab = build(800, g)
    val, _ = build(400, g, vocab)
    counts = torch.bincount(torch.cat([t for _, t in train]), minlength=len(TAGS)).float()
    weights = (counts.sum() / (len(TAGS) * counts)).clamp(max=5.0)

    model = BiGRUTagger(len(vocab), weights)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM final_lr={trainer.optimizers[0].param_groups[0]['lr']:.2e}")
    print(f"SYMPTOM val_f1={float(trainer.callback_metrics['val_f1']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
