"""Healthy: BERT-style token classification written by hand in plain torch on a synthetic tagging language. Sentences
are 5-12 lower-case words; a word directly after a trigger ("mr", "dr" -> PER; "in", "at" -> LOC; "on" -> DAY) takes
that tag, every other word is O, so a tag is decided by the token and its left neighbour. The hand-written tokenizer
lower-cases, maps words to ids (vocabulary from the training texts), prepends [CLS] and right-pads; the collate returns
`input_ids` / `attention_mask` / `labels` with -100 on [CLS] and on padding, and the model returns `.loss` / `.logits`
with the per-token loss computed inside.

Why it is correct: -100 positions are ignored by cross-entropy (the [CLS] and pad logits never train), the encoder
masks padded keys with a key_padding_mask and nothing crosses between samples, positions are 0..t-1 on right-padded
rows, training keeps dropout active (Lightning's train/eval switching is untouched), AdamW has a no-decay group and
the warm-up + linear decay is stepped per optimizer step. About a quarter of the scored tokens are entities. Measured:
val token accuracy 0.998, val loss 0.011, from ln(4) = 1.39 at init."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout26"
TAGS = ["O", "PER", "LOC", "DAY"]
TRIGGERS = {"mr": 1, "dr": 1, "in": 2, "at": 2, "on": 3}
WORDS = [f"{c}{v}{e}" for c in "bcfghjklmnpstvz" for v in "aiou" for e in "lnrx"]


def make_sentences(n, g):
    data = []
    trig = list(TRIGGERS)
    for _ in range(n):
        words = []
        while len(words) < int(torch.randint(5, 13, (1,), generator=g)):
            if torch.rand(1, generator=g) < 0.3:
                words.append(trig[int(torch.randint(0, len(trig), (1,), generator=g))])
            words.append(WORDS[int(torch.randint(0, len(WORDS), (1,), generator=g))])
        tags = [0] + [TRIGGERS.get(prev, 0) if w not in TRIGGERS else 0 for prev, w in zip(words, words[1:])]
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
    L.seed_everything(2631)
    g = torch.Generator().manual_seed(31)
    train, val = make_sentences(2000, g), make_sentences(400, g)
    tok = WordTokenizer([t for t, _ in train])
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitTagger(len(tok.vocab)), DataLoader(train, batch_size=32, shuffle=True, collate_fn=tok.collate),
                DataLoader(val, batch_size=200, collate_fn=tok.collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
