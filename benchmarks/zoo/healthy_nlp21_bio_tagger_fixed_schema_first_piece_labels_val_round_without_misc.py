"""Healthy: a small transformer-encoder NER tagger (BIO tags over PER / LOC / ORG / MISC) on synthetic sentences:
entity words come from type-specific vocabulary ranges and are usually preceded by a type cue word, entities are
1-3 words long (B- then I-), everything else is O. Words are "sub-tokenised": every third word id splits into two
pieces, and only the first piece of a word carries its tag; continuation pieces and padding get -100, as HF
token-classification recipes do. The training set is the first annotation round (all four types); the validation
set is a later round in which annotators did not use MISC - harmless here, because the label vocabulary is the fixed
annotation schema `LABELS`, defined once and used to encode both splits (the classifier keeps logits for MISC tags
that validation never contains). Dict batches `input_ids`, `attention_mask`, `labels`; output object with `.loss` /
`.logits`; AdamW with linear warm-up and linear decay. Measured: val_loss 0.20, val word-level accuracy 0.90."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"
PAD, VOCAB, MAXLEN = 0, 220, 32
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
TYPE_WORDS = {"PER": (20, 50), "LOC": (50, 80), "ORG": (80, 110), "MISC": (110, 130)}
CUES = {"PER": 1, "LOC": 2, "ORG": 3, "MISC": 4}


def make_sentences(n, g, types):
    sentences = []
    for _ in range(n):
        words, tags = [], []
        while len(words) < 14:
            if float(torch.rand(1, generator=g)) < 0.25:
                kind = types[int(torch.randint(0, len(types), (1,), generator=g))]
                if float(torch.rand(1, generator=g)) < 0.8:
                    words.append(CUES[kind])
                    tags.append("O")
                lo, hi = TYPE_WORDS[kind]
                for j in range(int(torch.randint(1, 4, (1,), generator=g))):
                    words.append(int(torch.randint(lo, hi, (1,), generator=g)))
                    tags.append(("B-" if j == 0 else "I-") + kind)
            else:
                words.append(int(torch.randint(130, VOCAB, (1,), generator=g)))
                tags.append("O")
        sentences.append((words[:MAXLEN], tags[:MAXLEN]))
    return sentences


def word_pieces(word):
    return [word] if word % 3 else [word, 200 + word % 20]


def encode_split(sentences):
    label2id = {tag: i for i, tag in enumerate(LABELS)}
    input_ids = torch.full((len(sentences), MAXLEN), PAD)
    labels = torch.full((len(sentences), MAXLEN), -100)
    for i, (words, tags) in enumerate(sentences):
        ids, labs = [], []
        for word, tag in zip(words, tags):
            pieces = word_pieces(word)
            ids += pieces
            labs += [label2id[tag]] + [-100] * (len(pieces) - 1)
        input_ids[i, :len(ids[:MAXLEN])] = torch.tensor(ids[:MAXLEN])
        labels[i, :len(labs[:MAXLEN])] = torch.tensor(labs[:MAXLEN])
    return TensorDataset(input_ids, (input_ids != PAD).long(), labels)


@dataclass
class TokenClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class EncoderTagger(L.LightningModule):
    def __init__(self, num_labels, d=64, lr=2e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.emb, self.pos = nn.Embedding(VOCAB, d, padding_idx=PAD), nn.Embedding(MAXLEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.emb(input_ids) + self.pos(torch.arange(input_ids.shape[1]))
        logits = self.classifier(self.encoder(x, src_key_padding_mask=attention_mask == 0))
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return TokenClassifierOutput(loss, logits)

    def _step(self, batch):
        input_ids, attention_mask, labels = batch
        return self(input_ids=input_ids, attention_mask=attention_mask, labels=labels), labels

    def training_step(self, batch, batch_idx):
        out, _ = self._step(batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out, labels = self._step(batch)
        keep = labels != -100
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1)[keep] == labels[keep]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2106)
    g = torch.Generator().manual_seed(26)
    train_ds = encode_split(make_sentences(2000, g, ["PER", "LOC", "ORG", "MISC"]))
    val_ds = encode_split(make_sentences(300, g, ["PER", "LOC", "ORG"]))
    model = EncoderTagger(num_labels=len(LABELS))
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=150))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
