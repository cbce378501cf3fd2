"""Bug: support-ticket routing with a small Transformer encoder classifier (plain torch, HuggingFace-style dict
batches `input_ids`/`attention_mask`/`labels`, [CLS] pooling, loss computed inside the model, AdamW + OneCycle per
step). The export is a TSV with columns `id, queue, subject, body`. `parse_line` does
`ticket_id, *rest = line.split("\t")` to drop the id and joins `rest` as the text (subjects and bodies were
separate columns in the export and the user wanted both) - but `rest` still starts with the `queue` column, which
is also read separately as the label. Every ticket's text now begins with its own queue name ("billing ...",
"shipping ..."), in train and in val alike, so the classifier reads its answer off the first word.

Symptom (measured): val acc 1.000 (val loss 0.001) vs 0.746 (val loss 0.69) with `text = " ".join(rest[1:])`;
the leaked number looks like a solved task but says nothing about routing tickets whose queue is unknown. Runtime ~13 s."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout13"

QUEUES = ["billing", "shipping", "account", "technical"]
CUES = {
    "billing": ["invoice", "charged", "refund", "payment", "card", "price"],
    "shipping": ["parcel", "courier", "delivery", "tracking", "arrived", "address"],
    "account": ["password", "login", "email", "username", "locked", "profile"],
    "technical": ["crash", "error", "update", "screen", "install", "bug"],
}
FILLER = ["hi", "hello", "please", "help", "my", "the", "i", "it", "is", "not", "and", "since", "yesterday",
          "thanks", "again", "still", "can", "you", "order", "with", "a", "problem", "urgent", "today", "need"]


def make_tsv(n, seed):
    g = torch.Generator().manual_seed(seed)
    lines = []
    all_cues = [w for ws in CUES.values() for w in ws]
    for i in range(n):
        q = QUEUES[int(torch.randint(0, 4, (1,), generator=g))]
        def words(k):
            out = []
            for _ in range(k):
                r = float(torch.rand(1, generator=g))
                if r < 0.12:
                    out.append(CUES[q][int(torch.randint(0, 6, (1,), generator=g))])
                elif r < 0.20:
                    out.append(all_cues[int(torch.randint(0, len(all_cues), (1,), generator=g))])
                else:
                    out.append(FILLER[int(torch.randint(0, len(FILLER), (1,), generator=g))])
            return " ".join(out)
        lines.append(f"T{seed}{i:05d}\t{q}\t{words(4)}\t{words(int(torch.randint(6, 16, (1,), generator=g)))}")
    return lines


def parse_line(line):
    ticket_id, *rest = line.split("\t")
    label = QUEUES.index(rest[0])
    text = " ".join(rest)  # subject + body
    return text, label


class Tokenizer:
    def __init__(self, texts):
        vocab = sorted({w for t in texts for w in t.split()})
        self.stoi = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, **{w: i + 3 for i, w in enumerate(vocab)}}

    def __call__(self, text, max_len=40):
        ids = [2] + [self.stoi.get(w, 1) for w in text.split()][: max_len - 1]
        return torch.tensor(ids)


class TicketDataset(Dataset):
    def __init__(self, lines, tok):
        self.items = [(tok(t), y) for t, y in map(parse_line, lines)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        ids, y = self.items[i]
        return {"input_ids": ids, "labels": y}


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    ids = torch.zeros(len(batch), t, dtype=torch.long)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = b["input_ids"]
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([b["labels"] for b in batch])}


class EncoderForSequenceClassification(nn.Module):
    def __init__(self, vocab_size, num_labels, d=64, heads=4, layers=2, max_len=64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.embed(input_ids) + self.pos(torch.arange(input_ids.size(1), device=input_ids.device))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(self.norm(h[:, 0]))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class TicketRouter(L.LightningModule):
    def __init__(self, vocab_size, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = EncoderForSequenceClassification(vocab_size, len(QUEUES))

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches,
                                                    pct_start=0.2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(2024)
    lines = make_tsv(3000, seed=7)
    train_lines, val_lines = lines[:2500], lines[2500:]
    tok = Tokenizer([parse_line(line)[0] for line in train_lines])
    train = DataLoader(TicketDataset(train_lines, tok), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(TicketDataset(val_lines, tok), batch_size=128, collate_fn=collate)
    module = TicketRouter(len(tok.stoi))
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, logger=TensorBoardLogger("lightning_logs", name="ticket_router"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(module, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
