"""Bug: intent classification of short assistant commands ("please play some jazz", "set an alarm for six") with
a bidirectional GRU over packed sequences, HuggingFace-style dict batches `input_ids`/`attention_mask`/`labels` and
the loss computed in the model. `pack_padded_sequence(enforce_sorted=True)` wants the batch sorted by length, so the
collate function sorts the tokenized commands longest-first - and then builds `labels` from the batch in its
original order. Every label lands on a different command of the batch; inside a shuffled batch that is a random
pairing, so the model can only learn the label prior. Nothing crashes: the loss sits at ln(5) and val accuracy at
chance. Symptom: train loss 1.610 at the end (ln 5 = 1.609), val acc 0.20 vs 1.00 (train loss 0.001) with
`labels` taken in the sorted order."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-trend"}
SPLIT = "heldout19"
INTENTS = {
    "play_music": (["play", "put on", "start"], ["some jazz", "the new album", "my playlist", "rock music"]),
    "set_alarm": (["set an alarm for", "wake me up at", "alarm at"], ["six", "seven thirty", "noon", "five am"]),
    "weather": (["what is the weather", "will it rain", "how cold is it"], ["today", "tomorrow", "in paris", ""]),
    "timer": (["start a timer for", "set a timer for", "count down"], ["ten minutes", "one hour", "five minutes"]),
    "call": (["call", "phone", "ring"], ["mom", "the office", "anna", "my brother"]),
}
POLITE = ["", "please", "hey", "could you", "can you"]
TAIL = ["", "now", "thanks", "right away", "for me"]


def make_commands(n, g):
    names = list(INTENTS)
    pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]
    out = []
    for _ in range(n):
        label = int(torch.randint(len(names), (1,), generator=g))
        verbs, objs = INTENTS[names[label]]
        text = " ".join(x for x in (pick(POLITE), pick(verbs), pick(objs), pick(TAIL)) if x)
        out.append((text, label))
    return out


class Tokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}

    def encode(self, text):
        return [self.vocab.get(w, 1) for w in text.split()]


def make_collate(tok):
    def collate(batch):
        encoded = sorted((tok.encode(t) for t, _ in batch), key=len, reverse=True)
        T = len(encoded[0])
        input_ids = torch.zeros(len(batch), T, dtype=torch.long)
        for i, ids in enumerate(encoded):
            input_ids[i, : len(ids)] = torch.tensor(ids)
        return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long(),
                "labels": torch.tensor([y for _, y in batch])}

    return collate


class BiGRUForSequenceClassification(nn.Module):
    def __init__(self, vocab_size, num_labels, d=48):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * d, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        lengths = attention_mask.sum(1).cpu()
        packed = pack_padded_sequence(self.embed(input_ids), lengths, batch_first=True, enforce_sorted=True)
        _, h = self.gru(packed)
        logits = self.classifier(torch.cat([h[0], h[1]], dim=-1))
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


class LitIntent(L.LightningModule):
    def __init__(self, vocab_size):
        super().__init__()
        self.model = BiGRUForSequenceClassification(vocab_size, len(INTENTS))

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"], on_epoch=True, on_step=False)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)}


if __name__ == "__main__":
    L.seed_everything(515)
    g = torch.Generator().manual_seed(515)
    train, val = make_commands(2000, g), make_commands(400, g)
    tok = Tokenizer([t for t, _ in train])
    collate = make_collate(tok)
    lit = LitIntent(len(tok.vocab))
    trainer = L.Trainer(max_epochs=8, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_intent"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=100, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
