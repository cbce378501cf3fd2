"""Bug: a BERT-style encoder classifier written by hand in plain torch, fine-tuned on a synthetic "review" language
(4-14 words from 40 made-up words, 6 positive, 6 negative, the rest filler; label 1 when positives outnumber
negatives). A hand-written word-level tokenizer builds its vocabulary by frequency, prepends [CLS], right-pads and
returns dict batches with `input_ids` / `attention_mask` / `labels`; [CLS] pooling, AdamW with no-decay groups,
linear warm-up + decay per step.

The data-preparation helper `tokenize_split(texts)` creates and fits a fresh `WordTokenizer` for every split it is
called on, so the validation texts are encoded with a vocabulary fitted on the validation texts. Because ids are
assigned by frequency, the two vocabularies agree on the specials but order the 40 words differently: in validation
"bravo" may get the id that "murk" has in training. Nothing crashes (both vocabularies have the same size) and
training converges perfectly; validation is scored on a scrambled language. Symptom: val accuracy 0.61, val loss
2.83 (above ln 2 = 0.69) while train loss falls towards 0, vs val accuracy 1.00 / val loss 0.001 with one
tokenizer fitted on the training texts."""

from collections import Counter
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout26"
POSITIVE = ["bravo", "lumen", "zesty", "kindo", "solar", "vivid"]
NEGATIVE = ["murk", "grime", "dolor", "bleak", "sorn", "taint"]
FILLER = [f"w{c}{v}" for c in "bdfgkmnprst" for v in "aeo"][:28]


def make_reviews(n, g):
    texts, labels = [], []
    while len(texts) < n:
        length = int(torch.randint(4, 15, (1,), generator=g))
        kinds = torch.randint(0, 4, (length,), generator=g)
        pos, neg = int((kinds == 0).sum()), int((kinds == 1).sum())
        if pos == neg:
            continue
        words = []
        for k in kinds.tolist():
            bank = POSITIVE if k == 0 else NEGATIVE if k == 1 else FILLER
            words.append(bank[int(torch.randint(0, len(bank), (1,), generator=g))])
        texts.append(" ".join(words))
        labels.append(int(pos > neg))
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
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels)}


def tokenize_split(texts):
    tok = WordTokenizer().fit(texts)
    return tok, [tok.encode(t) for t in texts]


@dataclass
class SequenceClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyBertClassifier(nn.Module):
    def __init__(self, vocab_size, num_labels=2, d=64, heads=4, layers=2, max_len=32):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab_size, d), nn.Embedding(max_len, d)
        self.emb_ln = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_ln = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        x = self.emb_ln(self.tok_emb(input_ids) + self.pos_emb(pos))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(self.final_ln(h[:, 0]))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits)


class LitClassifier(L.LightningModule):
    def __init__(self, vocab_size, lr=2e-3, warmup=20, weight_decay=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyBertClassifier(vocab_size)

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
    L.seed_everything(2612)
    g = torch.Generator().manual_seed(11)
    train_texts, train_labels = make_reviews(2000, g)
    val_texts, val_labels = make_reviews(400, g)
    tok, train_ids = tokenize_split(train_texts)
    _, val_ids = tokenize_split(val_texts)
    train, val = list(zip(train_ids, train_labels)), list(zip(val_ids, val_labels))
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitClassifier(len(tok.vocab)), DataLoader(train, batch_size=32, shuffle=True, collate_fn=tok.collate),
                DataLoader(val, batch_size=200, collate_fn=tok.collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
