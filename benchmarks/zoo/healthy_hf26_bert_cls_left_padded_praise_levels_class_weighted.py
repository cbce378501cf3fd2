"""Healthy: a BERT-style encoder classifier written by hand in plain torch, on a synthetic "review" language (4-14
words from 40 made-up words; 6 are "praise" words), 3 classes by how much praise a review holds: none, one or two,
three or more (roughly 32 / 57 / 11 %). The hand-written word tokenizer is fitted on the training texts, prepends
[CLS] and pads on the LEFT (the batching code is shared with a decoder model that needs left padding), and the model
returns `.loss` / `.logits` with the loss computed inside.

Why it is correct, although it looks odd: with left padding the [CLS] token is not at column 0, so the model pools
the column `(attention_mask == 0).sum(-1)` (the first real token) and computes position ids as
`attention_mask.cumsum(-1) - 1` clamped at 0, so every sentence sees the same positions as it would right-padded;
padded keys are masked with key_padding_mask. The class imbalance is handled with inverse-frequency class weights
computed from the TRAINING labels and registered as a buffer; AdamW with a no-decay group, warm-up + linear decay
per step. Measured: val accuracy 0.98, val loss 0.09, from ~ln 3 at init."""

from collections import Counter
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout26"
POSITIVE = ["bravo", "lumen", "zesty", "kindo", "solar", "vivid"]
FILLER = [f"w{c}{v}" for c in "bdfgkmnprst" for v in "aeo"][:28]


def make_reviews(n, g):
    texts, labels = [], []
    while len(texts) < n:
        length = int(torch.randint(4, 15, (1,), generator=g))
        kinds = torch.randint(0, 8, (length,), generator=g)
        pos = int((kinds == 0).sum())
        words = []
        for k in kinds.tolist():
            bank = POSITIVE if k == 0 else FILLER
            words.append(bank[int(torch.randint(0, len(bank), (1,), generator=g))])
        texts.append(" ".join(words))
        labels.append(0 if pos == 0 else 1 if pos <= 2 else 2)
    return texts, labels


class WordTokenizer:
    specials = ["[PAD]", "[UNK]", "[CLS]"]

    def fit(self, texts):
        counts = Counter(w for t in texts for w in t.split())
        self.vocab = {w: i for i, w in enumerate(self.specials + [w for w, _ in counts.most_common()])}
        return self

    def encode(self, text):
        return [self.vocab["[CLS]"]] + [self.vocab.get(w, self.vocab["[UNK]"]) for w in text.split()]

    def collate(self, batch):
        seqs, labels = zip(*batch)
        width = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels)}


@dataclass
class SequenceClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyBertClassifier(nn.Module):
    def __init__(self, vocab_size, class_weights, num_labels=3, d=64, heads=4, layers=2, max_len=32):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab_size, d), nn.Embedding(max_len, d)
        self.emb_ln = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_ln = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, num_labels)
        self.register_buffer("class_weights", class_weights)

    def forward(self, input_ids, attention_mask, labels=None):
        pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        x = self.emb_ln(self.tok_emb(input_ids) + self.pos_emb(pos))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        cls_col = (attention_mask == 0).sum(-1)
        logits = self.classifier(self.final_ln(h[torch.arange(h.shape[0], device=h.device), cls_col]))
        loss = F.cross_entropy(logits, labels, weight=self.class_weights) if labels is not None else None
        return SequenceClassifierOutput(loss, logits)


class LitClassifier(L.LightningModule):
    def __init__(self, vocab_size, class_weights, lr=2e-3, warmup=20, weight_decay=0.01):
        super().__init__()
        self.save_hyperparameters(ignore=["class_weights"])
        self.model = TinyBertClassifier(vocab_size, class_weights)

    def forward(self, input_ids, attention_mask, labels=None):
        return self.model(input_ids, attention_mask, labels)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        groups = [{"params": [], "weight_decay": self.hparams.weight_decay}, {"params": [], "weight_decay": 0.0}]
        for name, p in self.named_parameters():
            groups[int(p.ndim < 2 or "emb" in name)]["params"].append(p)
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2651)
    g = torch.Generator().manual_seed(11)
    train_texts, train_labels = make_reviews(2000, g)
    val_texts, val_labels = make_reviews(400, g)
    tok = WordTokenizer().fit(train_texts)
    train = list(zip([tok.encode(t) for t in train_texts], train_labels))
    val = list(zip([tok.encode(t) for t in val_texts], val_labels))
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    counts = torch.bincount(torch.tensor(train_labels), minlength=3).float()
    weights = counts.sum() / (3 * counts)
    trainer.fit(LitClassifier(len(tok.vocab), weights),
                DataLoader(train, batch_size=32, shuffle=True, collate_fn=tok.collate),
                DataLoader(val, batch_size=200, collate_fn=tok.collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
