"""Bug: a support-ticket intent classifier (4 queues) - word tokenizer fitted on the training texts after a cleaning
step that drops stop-words and greetings, Embedding + BiGRU, masked mean pooling over `attention_mask`, linear head,
AdamW with linear warm-up/decay. A few percent of the tickets are nothing but pleasantries ("hi thanks please
help") and become empty after cleaning; the collate pads them to the batch length with an all-zero attention mask,
and the pooling `(h * mask).sum(1) / mask.sum(1)` divides 0 by 0 for them. The first batch holding such a ticket
makes the loss NaN, the NaN gradients go into AdamW and every weight is NaN from then on; Lightning keeps training
without complaint.
Symptom: train loss NaN from the second step on (91 of 2400 training tickets are empty after cleaning), val acc
0.24 (argmax of NaN logits), vs train loss 0.15 / val acc 0.835 with the pooling denominator clamped to 1."""

import re

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout12"

QUEUES = ["billing", "shipping", "account", "technical"]
CUES = {
    "billing": ["invoice", "charged", "refund", "payment", "card", "twice", "bill", "price"],
    "shipping": ["package", "delivery", "tracking", "courier", "arrived", "late", "address", "parcel"],
    "account": ["password", "login", "email", "username", "locked", "reset", "profile", "signup"],
    "technical": ["crash", "error", "app", "update", "screen", "bug", "freeze", "install"],
}
NEUTRAL = ["order", "yesterday", "today", "again", "still", "week", "my", "your", "not", "working", "problem", "issue",
           "need", "urgent", "since", "after", "phone", "website", "account", "number"]
STOP = ["hi", "hello", "thanks", "thank", "you", "please", "help", "the", "a", "i", "is", "to", "and", "hey",
        "regards", "cheers", "can", "me", "it"]
STOPSET = set(STOP)


def make_ticket(g):
    label = int(torch.randint(4, (1,), generator=g))

    def pick(xs):
        return xs[int(torch.randint(len(xs), (1,), generator=g))]

    if float(torch.rand(1, generator=g)) < 0.04:          # pleasantries only
        words = [pick(STOP) for _ in range(int(torch.randint(2, 6, (1,), generator=g)))]
    else:
        words = []
        for _ in range(int(torch.randint(5, 16, (1,), generator=g))):
            r = float(torch.rand(1, generator=g))
            words.append(pick(CUES[QUEUES[label]]) if r < 0.2 else pick(NEUTRAL) if r < 0.6 else pick(STOP))
        # a cue word of another queue now and then
        if float(torch.rand(1, generator=g)) < 0.3:
            words.insert(int(torch.randint(len(words), (1,), generator=g)), pick(CUES[pick(QUEUES)]))
    text = " ".join(words).capitalize() + pick([".", "!", "?", "!!"])
    return text, label


def clean(text):
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPSET]


class Tokenizer:
    def __init__(self, texts):
        self.vocab = {"[PAD]": 0, "[UNK]": 1}
        for t in texts:
            for w in clean(t):
                self.vocab.setdefault(w, len(self.vocab))

    def __call__(self, text):
        return torch.tensor([self.vocab.get(w, 1) for w in clean(text)], dtype=torch.long)


def collate(batch):
    ids = pad_sequence([b[0] for b in batch], batch_first=True, padding_value=0)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([b[1] for b in batch])}


class TicketClassifier(L.LightningModule):
    def __init__(self, vocab_size, d=64, lr=2e-3, warmup_steps=30):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * d, len(QUEUES)))

    def forward(self, input_ids, attention_mask):
        h, _ = self.gru(self.embed(input_ids))
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (h * mask).sum(1) / mask.sum(1)
        return self.head(pooled)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log_dict({"val_loss": F.cross_entropy(logits, batch["labels"]),
                       "val_acc": (logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(404)
    g = torch.Generator().manual_seed(404)
    train_raw = [make_ticket(g) for _ in range(2400)]
    val_raw = [make_ticket(g) for _ in range(600)]
    tok = Tokenizer([t for t, _ in train_raw])
    train = [(tok(t), y) for t, y in train_raw]
    val = [(tok(t), y) for t, y in val_raw]

    model = TicketClassifier(len(tok.vocab))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM empty_after_cleaning={sum(len(x) == 0 for x, _ in train)}/{len(train)}")
    print(f"SYMPTOM train_loss={float(m['train_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
