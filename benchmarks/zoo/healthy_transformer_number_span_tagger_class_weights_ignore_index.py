"""Healthy: token classification with a small transformer encoder - tag the spans of "number words" in synthetic
sentences with BIO tags (O / B-NUM / I-NUM). HF-style dict batches `input_ids`/`attention_mask`/`labels`, labels
-100 on padding, the loss inside the model is cross-entropy with `ignore_index=-100` and class weights (O is ~80 %
of the tokens), AdamW with linear warm-up then linear decay per step, accumulate_grad_batches=2, gradient clipping.
Number words are recognisable by identity, but whether one starts a new span depends on its left neighbour
("and" joins numbers), so context matters. Final val token acc 0.98, span-token F1 0.94 (14 epochs)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout17"
PAD, AND = 0, 1
NUM_WORDS = list(range(2, 22))
OTHER_WORDS = list(range(22, 150))
VOCAB = 150
O, B, I = 0, 1, 2


def make_sentences(n, g):
    data = []
    for _ in range(n):
        ids, tags = [], []
        while len(ids) < int(torch.randint(10, 24, (1,), generator=g)):
            r = float(torch.rand(1, generator=g))
            if r < 0.15:
                span = [NUM_WORDS[int(torch.randint(0, 20, (1,), generator=g))]
                        for _ in range(int(torch.randint(1, 4, (1,), generator=g)))]
                if len(span) > 1 and float(torch.rand(1, generator=g)) < 0.5:
                    span.insert(len(span) - 1, AND)
                ids += span
                tags += [B] + [I] * (len(span) - 1)
            else:
                ids.append(OTHER_WORDS[int(torch.randint(0, len(OTHER_WORDS), (1,), generator=g))])
                tags.append(O)
        data.append((ids, tags))
    return data


class Sentences(Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


def collate(batch):
    width = max(len(x) for x, _ in batch)
    ids = torch.full((len(batch), width), PAD)
    labels = torch.full((len(batch), width), -100)
    for i, (x, t) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(t)] = torch.tensor(t)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class TransformerForTokenClassification(nn.Module):
    def __init__(self, d=64, class_weights=None):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(32, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.classifier = nn.Sequential(nn.LayerNorm(d), nn.Dropout(0.1), nn.Linear(d, 3))
        self.register_buffer("class_weights", class_weights)

    def forward(self, input_ids, attention_mask, labels=None):
        h = self.emb(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        logits = self.classifier(self.encoder(h, src_key_padding_mask=attention_mask == 0))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), weight=self.class_weights,
                                   ignore_index=-100)
        return {"loss": loss, "logits": logits}


class Tagger(L.LightningModule):
    def __init__(self, class_weights):
        super().__init__()
        self.model = TransformerForTokenClassification(class_weights=class_weights)

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        m = batch["labels"] != -100
        pred, gold = out["logits"].argmax(-1)[m], batch["labels"][m]
        tp = ((pred == gold) & (gold != O)).sum()
        f1 = 2 * tp / ((pred != O).sum() + (gold != O).sum()).clamp(min=1)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (pred == gold).float().mean())
        self.log("val_f1", f1.float())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warm = max(1, int(0.1 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5150)
    g = torch.Generator().manual_seed(5150)
    train, val = make_sentences(2000, g), make_sentences(400, g)
    counts = torch.bincount(torch.tensor([t for _, tags in train for t in tags]), minlength=3).float()
    weights = (counts.sum() / (3 * counts)).sqrt()
    train_dl = DataLoader(Sentences(train), batch_size=32, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(Sentences(val), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=14, accelerator="cpu", devices=1, accumulate_grad_batches=2, gradient_clip_val=1.0,
                        enable_progress_bar=False, logger=TensorBoardLogger("lightning_logs", name="num_tagger"),
                        enable_checkpointing=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Tagger(weights), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_f1={float(m['val_f1']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
