"""Healthy: purchase-intent classifier for web sessions (synthetic clickstream over 12 page types; buyers browse
more products, reviews and carts, but many non-buyers do too and 60% of them abandon a checkout). Sessions become
HF-style dict batches (`input_ids`/`attention_mask`/`labels`) for a small Transformer encoder with a masked-mean
pool returning an output object with `.logits`. The label is "this session ends in a purchase", and the shop logs
events after the purchase (the PURCHASE event itself and the `thank_you` confirmation page) that would give it
away; every session is cut at the purchase (`s[:s.index(PURCHASE)]`), so the model sees only what happened before
the decision, and a buyer's session ends with cart/checkout exactly like an abandoned one. Validation: accuracy
0.78 (CE 0.47) after 4 epochs against about 0.65 (CE 0.65) for always predicting the majority "no purchase"."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout35"
PAGES = ["<pad>", "home", "search", "category", "product", "reviews", "cart", "checkout", "purchase", "thank_you",
         "help", "account", "deals"]
PAD, PURCHASE, THANK_YOU = 0, PAGES.index("purchase"), PAGES.index("thank_you")
MAXLEN = 32


def clickstream(g, n):
    browse = torch.tensor([0.0, 2.0, 1.5, 1.5, 2.0, 0.5, 0.5, 0.2, 0.0, 0.0, 0.6, 0.6, 0.8])
    buyer_boost = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.4, 0.6, 0.9, 0.8, 0.0, 0.0, -0.3, 0.2, 0.0])
    sessions, labels = [], []
    for _ in range(n):
        buyer = bool(torch.rand(1, generator=g) < 0.35)
        probs = torch.softmax(browse.log().nan_to_num(neginf=-1e9) + buyer * buyer_boost, 0)
        length = int(torch.randint(4, MAXLEN - 4, (1,), generator=g))
        s = torch.multinomial(probs, length, replacement=True, generator=g).tolist()
        if buyer:
            s += [PAGES.index("cart"), PAGES.index("checkout"), PURCHASE, THANK_YOU, PAGES.index("home")]
        elif torch.rand(1, generator=g) < 0.6:
            s += [PAGES.index("cart"), PAGES.index("checkout")]
        sessions.append(s[:MAXLEN])
        labels.append(int(buyer))
    return sessions, labels


def prepare(sessions, labels):
    return [(s[:s.index(PURCHASE)] if PURCHASE in s else s, y) for s, y in zip(sessions, labels)]


def collate(rows):
    ids = torch.full((len(rows), MAXLEN), PAD)
    for i, (s, _) in enumerate(rows):
        ids[i, :len(s)] = torch.tensor(s)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": torch.tensor([y for _, y in rows])}


@dataclass
class ClassifierOutput:
    logits: torch.Tensor


class SessionEncoder(L.LightningModule):
    def __init__(self, d=48, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(len(PAGES), d, padding_idx=PAD)
        self.pos = nn.Embedding(MAXLEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 96, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(self.emb(input_ids) + self.pos.weight, src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).float()
        return ClassifierOutput(self.head((h * m).sum(1) / m.sum(1)))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]).logits, batch["labels"])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(3541)
    rows = prepare(*clickstream(torch.Generator().manual_seed(3541), 2000))
    model = SessionEncoder()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(rows[:1600], batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(rows[1600:], batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
