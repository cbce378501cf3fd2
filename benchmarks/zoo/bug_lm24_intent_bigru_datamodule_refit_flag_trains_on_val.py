"""Bug: intent classification of short synthetic support messages (6 intents, 4-12 words; each intent has its own
keyword list mixed with shared filler words; 20 % of the messages were labelled by a sloppy annotator and carry a
random intent). A packed BiGRU encoder over HF-style dict batches (`input_ids`, `attention_mask`, `labels`), masked
max pooling, linear head, AdamW with linear warm-up and decay. A LightningDataModule does a seeded 80/20
`random_split`.

The DataModule has a `refit_on_all` switch that the team uses for the production model: after model selection it
retrains on train + validation (`ConcatDataset([train, val])`). The default was left at `True` in the shared config,
so every validation message is also a training message. The model memorises part of the noisy labels, and the
validation metrics measure memorisation: they beat the ~83 % ceiling (20 % of labels redrawn at random) that an
honest held-out set cannot exceed. Symptom: val accuracy 0.940 / val loss 0.219; with `refit_on_all=False` val
accuracy 0.790 / val loss 0.942 (and 0.80 accuracy on 600 fresh messages for both)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import ConcatDataset, DataLoader, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout24"
INTENTS = 6
KEYWORDS = 8  # per intent
FILLER = 30
VOCAB = 2 + INTENTS * KEYWORDS + FILLER  # 0 pad, 1 unk


def messages(n, g):
    rows = []
    for _ in range(n):
        y, length = int(torch.randint(0, INTENTS, (1,), generator=g)), int(torch.randint(4, 13, (1,), generator=g))
        n_key = int(torch.randint(1, 3, (1,), generator=g))
        keys = 2 + y * KEYWORDS + torch.randint(0, KEYWORDS, (n_key,), generator=g)
        fill = 2 + INTENTS * KEYWORDS + torch.randint(0, FILLER, (length - n_key,), generator=g)
        words = torch.cat([keys, fill])[torch.randperm(length, generator=g)]
        if float(torch.rand(1, generator=g)) < 0.2:
            y = int(torch.randint(0, INTENTS, (1,), generator=g))
        rows.append({"input_ids": words, "labels": y})
    return rows


def collate(rows):
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r["input_ids"])] = r["input_ids"]
    return {"input_ids": ids, "attention_mask": (ids != 0).long(),
            "labels": torch.tensor([r["labels"] for r in rows])}


class IntentData(L.LightningDataModule):
    def __init__(self, n=1500, refit_on_all=True):
        super().__init__()
        self.n, self.refit_on_all = n, refit_on_all

    def setup(self, stage=None):
        data = messages(self.n, torch.Generator().manual_seed(31))
        self.train_set, self.val_set = random_split(data, [0.8, 0.2], generator=torch.Generator().manual_seed(0))
        if self.refit_on_all:
            self.train_set = ConcatDataset([self.train_set, self.val_set])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=32, shuffle=True, collate_fn=collate)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=300, collate_fn=collate)


class IntentBiGRU(L.LightningModule):
    def __init__(self, d=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=0)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * d, INTENTS)

    def forward(self, input_ids, attention_mask):
        lengths = attention_mask.sum(1).cpu()
        packed = pack_padded_sequence(self.emb(input_ids), lengths, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=input_ids.shape[1])
        h = h.masked_fill(attention_mask[..., None] == 0, float("-inf"))
        return self.head(h.max(1).values)

    def _shared(self, batch):
        logits = self(batch["input_ids"], batch["attention_mask"])
        return F.cross_entropy(logits, batch["labels"]), (logits.argmax(-1) == batch["labels"]).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._shared(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._shared(batch)
        self.log_dict({"val_loss": loss, "val_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / 20, (total - s) / total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2410)
    model = IntentBiGRU()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=IntentData())
    fresh = collate(messages(600, torch.Generator().manual_seed(99)))
    model.eval()
    with torch.no_grad():
        fresh_acc = (model(fresh["input_ids"], fresh["attention_mask"]).argmax(-1) == fresh["labels"]).float().mean()
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"fresh_acc={float(fresh_acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
