"""Bug: BERT-style token classification written by hand in plain torch on a synthetic tagging language (a word after
"mr"/"dr" is PER, after "in"/"at" LOC, after "on" DAY, a word from a 48-word city gazetteer is LOC anywhere,
everything else O), lower-casing word tokenizer, [CLS] and
padding labelled -100, loss inside the model, AdamW no-decay groups, warm-up + linear decay per step.

Only 250 annotated sentences exist, so the DataModule "augments" them with casing variants (Title Case and UPPER
CASE copies, the tags unchanged) to make the model robust to capitalisation, and only then carves out 20 % for
validation with `random_split`. The tokenizer lower-cases, so the three variants of a sentence are the exact same
`input_ids` and `labels`: almost every validation sentence also sits in the training set (P(no copy in train) =
0.2**2 = 4 %). Training is fine; validation measures memorisation. Symptom: val token accuracy 0.880 on the
overlapping split vs 0.818 on 400 freshly generated sentences (the honest number: gazetteer words must be memorised)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout26"
TAGS = ["O", "PER", "LOC", "DAY"]
TRIGGERS = {"mr": 1, "dr": 1, "in": 2, "at": 2, "on": 3}
WORDS = [f"{c}{v}{e}" for c in "bcfghjklmnpstvz" for v in "aiou" for e in "lnrx"]
GAZETTEER = set(WORDS[::5])


def make_sentences(n, g):
    data = []
    trig = list(TRIGGERS)
    for _ in range(n):
        words = []
        while len(words) < int(torch.randint(5, 13, (1,), generator=g)):
            if torch.rand(1, generator=g) < 0.3:
                words.append(trig[int(torch.randint(0, len(trig), (1,), generator=g))])
            words.append(WORDS[int(torch.randint(0, len(WORDS), (1,), generator=g))])
        tags = [2 if words[0] in GAZETTEER else 0]
        tags += [0 if w in TRIGGERS else TRIGGERS.get(prev, 2 if w in GAZETTEER else 0)
                 for prev, w in zip(words, words[1:])]
        data.append((" ".join(words), tags))
    return data


class WordTokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.lower().split()})
        self.vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]"] + words)}

    def encode(self, text):
        return [2] + [self.vocab.get(w, 1) for w in text.lower().split()]

    def collate(self, batch):
        width = 1 + max(len(tags) for _, tags in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        labels = torch.full((len(batch), width), -100)
        for i, (text, tags) in enumerate(batch):
            ids[i, :len(tags) + 1] = torch.tensor(self.encode(text))
            labels[i, 1:len(tags) + 1] = torch.tensor(tags)
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


@dataclass
class TokenClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyBertTagger(nn.Module):
    def __init__(self, vocab_size, d=64, heads=4, layers=2, max_len=32):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab_size, d), nn.Embedding(max_len, d)
        self.emb_ln = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Dropout(0.1), nn.Linear(d, len(TAGS)))

    def forward(self, input_ids, attention_mask, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        h = self.encoder(self.emb_ln(self.tok_emb(input_ids) + self.pos_emb(pos)),
                         src_key_padding_mask=attention_mask == 0)
        logits = self.head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, len(TAGS)), labels.reshape(-1), ignore_index=-100)
        return TokenClassifierOutput(loss, logits)


class LitTagger(L.LightningModule):
    def __init__(self, vocab_size, lr=2e-3, warmup=20, weight_decay=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyBertTagger(vocab_size)

    def forward(self, input_ids, attention_mask, labels=None):
        return self.model(input_ids, attention_mask, labels)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        scored = batch["labels"] != -100
        acc = (out.logits.argmax(-1) == batch["labels"])[scored].float().mean()
        self.log("val_loss", out.loss)
        self.log("val_acc", acc)

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
    L.seed_everything(2632)
    g = torch.Generator().manual_seed(31)
    annotated = make_sentences(250, g)
    augmented = annotated + [(t.title(), tags) for t, tags in annotated] + [(t.upper(), tags) for t, tags in annotated]
    n_val = len(augmented) // 5
    train, val = random_split(augmented, [len(augmented) - n_val, n_val], generator=torch.Generator().manual_seed(0))
    tok = WordTokenizer([t for t, _ in train])
    test = make_sentences(400, g)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    model = LitTagger(len(tok.vocab))
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=tok.collate),
                DataLoader(val, batch_size=200, collate_fn=tok.collate))
    val_acc = float(trainer.callback_metrics["val_acc"])
    test_loader = DataLoader(test, batch_size=200, collate_fn=tok.collate)
    test_acc = trainer.validate(model, test_loader, verbose=False)[0]["val_acc"]
    print(f"SYMPTOM val_acc={val_acc:.3f} fresh_test_acc={test_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
