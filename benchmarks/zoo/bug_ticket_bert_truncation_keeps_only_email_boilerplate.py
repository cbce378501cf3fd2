"""Bug: support-ticket routing with a small BERT-style encoder ([CLS] pooling, AdamW, linear warm-up/decay per step).
Tickets arrive as e-mails: a greeting and a boilerplate header from the web form ("hello support team , i hope you
are well . my account number is <num> ...", 14-26 words, three variants), then the message body with the content that
decides the queue (billing / technical / shipping / account). The user copied `max_length=24` from the model card of
the short-text classifier this script was adapted from, and the encoder truncates on the right as HF tokenizers do by
default. For most tickets the kept 24 tokens are [CLS] plus the header only: identical inputs (account numbers are
normalised to <num>) carrying every one of the four labels. Only tickets with the shortest header keep a few body
words.

Symptom: val accuracy 0.47 (train loss stuck at 1.26) vs 0.96 (train loss 0.19) with `max_length=64` (whole tickets)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout14"
HEADERS = [
    "hello support team , i hope you are well . my account number is <num> and i am writing about :",
    "hi , this message was sent from the contact form . account : <num> . customer message follows below :",
    "dear sir or madam , thank you for your help in advance . i have been a customer for years and my account "
    "number is <num> . here is my question :",
]
QUEUES = {
    "billing": "invoice charged twice refund payment card bill overcharged subscription fee".split(),
    "technical": "error crash login app bug password loading screen freezes update".split(),
    "shipping": "parcel delivery courier tracking late arrived damaged address package shipped".split(),
    "account": "email change name delete profile username settings close verify".split(),
}
FILLER = "i my the a it is was and but please can you this that since yesterday week still not have with".split()


def make_tickets(n, seed):
    g = torch.Generator().manual_seed(seed)

    def pick(seq):
        return seq[int(torch.randint(0, len(seq), (1,), generator=g))]

    labels, texts = [], []
    names = list(QUEUES)
    for _ in range(n):
        q = int(torch.randint(0, len(names), (1,), generator=g))
        body = []
        for _ in range(int(torch.randint(10, 25, (1,), generator=g))):
            r = float(torch.rand(1, generator=g))
            body.append(pick(QUEUES[names[q]]) if r < 0.25 else pick(QUEUES[pick(names)]) if r < 0.3 else pick(FILLER))
        texts.append(pick(HEADERS) + " " + " ".join(body) + " thanks")
        labels.append(q)
    return texts, labels


class WordTokenizer:
    def __init__(self, texts, max_length):
        words = sorted({w for t in texts for w in t.split()})
        self.itos = ["[PAD]", "[UNK]", "[CLS]"] + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.max_length = max_length

    def __call__(self, texts):
        rows = [[2] + [self.stoi.get(w, 1) for w in t.split()] for t in texts]
        rows = [r[:self.max_length] for r in rows]  # truncation on the right, as HF tokenizers default to
        T = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), T, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


class Tickets(Dataset):
    def __init__(self, enc, labels):
        self.enc, self.labels = enc, torch.tensor(labels)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.enc["input_ids"][i], "attention_mask": self.enc["attention_mask"][i],
                "labels": self.labels[i]}


class TicketEncoder(L.LightningModule):
    def __init__(self, vocab_size, n_labels, d=64, n_layers=2, max_len=64, lr=1e-3, warmup_frac=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(vocab_size, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.ln = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(d, n_labels))

    def forward(self, input_ids, attention_mask):
        x = self.ln(self.tok(input_ids) + self.pos(torch.arange(input_ids.size(1))))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        return self.classifier(h[:, 0])

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warmup = int(self.hparams.warmup_frac * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(17)
    train_texts, train_labels = make_tickets(2400, seed=1)
    val_texts, val_labels = make_tickets(600, seed=2)
    tokenizer = WordTokenizer(train_texts, max_length=24)
    train = Tickets(tokenizer(train_texts), train_labels)
    val = Tickets(tokenizer(val_texts), val_labels)
    model = TicketEncoder(len(tokenizer.itos), len(QUEUES))
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="ticket_bert"), log_every_n_steps=10)
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
