"""Bug: a small transformer encoder with a learned [CLS] token classifies synthetic "utterances" into 6 intents. An
utterance is 6-10 tokens: filler words plus two slot words a and b (from 12 each) at random positions; the intent
is a // 2, but annotation is noisy (30 % of utterances carry a random intent), so the best achievable accuracy on new
utterances is 0.75. 700 utterances are annotated; to get more data the
pipeline adds 3 synonym-replacement copies of each (every filler word is swapped for its synonym with p = 0.1).
Dict batches `input_ids`, `attention_mask`, `labels`; SequenceClassifierOutput-style `.loss` / `.logits`; AdamW
with OneCycle; a fresh test set of unseen utterances is scored at the end.

The augmentation runs on the full annotated set and `random_split(80/20)` comes after it. The four versions of an
utterance differ in a few filler words at most (a third of the copies are exact duplicates of the original), so most
validation utterances have an identical or near-identical twin in training; the slot words, which decide the label,
are always identical. Training is normal, validation looks great. The noisy labels get memorised and the twins
recall them. Symptom: val accuracy 0.96 - above the 0.75 ceiling - but accuracy on fresh utterances 0.65; splitting
the 700 originals first and augmenting only the training part gives val accuracy 0.67 and test 0.64, an honest
validation number."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout21"
PAD, CLS, VOCAB, MAXLEN = 0, 1, 140, 11
SLOT_A, SLOT_B, FILLER = 2, 14, 40  # ids 2-13, 14-25, fillers 40-89 with synonyms at +50


def make_utterances(n, g):
    data = []
    for _ in range(n):
        length = int(torch.randint(6, 11, (1,), generator=g))
        toks = torch.randint(FILLER, FILLER + 50, (length,), generator=g)
        a, b = torch.randint(0, 12, (2,), generator=g).tolist()
        pa, pb = torch.randperm(length, generator=g)[:2].tolist()
        toks[pa], toks[pb] = SLOT_A + a, SLOT_B + b
        label = a // 2 if float(torch.rand(1, generator=g)) < 0.7 else int(torch.randint(0, 6, (1,), generator=g))
        data.append((toks.tolist(), label))
    return data


def synonym_copies(data, g, n_copies=3, p=0.1):
    out = []
    for toks, label in data:
        out.append((toks, label))
        for _ in range(n_copies):
            swap = torch.rand(len(toks), generator=g) < p
            out.append(([t + 50 if s and FILLER <= t < FILLER + 50 else t for t, s in zip(toks, swap.tolist())], label))
    return out


def collate(batch):
    input_ids = torch.full((len(batch), MAXLEN), PAD)
    for i, (toks, _) in enumerate(batch):
        input_ids[i, :len(toks) + 1] = torch.tensor([CLS] + toks)
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(),
            "labels": torch.tensor([label for _, label in batch])}


@dataclass
class SequenceClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class ClsEncoder(L.LightningModule):
    def __init__(self, d=64, num_labels=6, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb, self.pos = nn.Embedding(VOCAB, d, padding_idx=PAD), nn.Embedding(MAXLEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm, self.classifier = nn.LayerNorm(d), nn.Linear(d, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.emb(input_ids) + self.pos(torch.arange(input_ids.shape[1]))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(self.norm(h[:, 0]))
        return SequenceClassifierOutput(None if labels is None else F.cross_entropy(logits, labels), logits)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2109)
    g = torch.Generator().manual_seed(29)
    annotated, fresh = make_utterances(700, g), make_utterances(1000, g)
    augmented = synonym_copies(annotated, g)
    train, val = random_split(augmented, [0.8, 0.2], generator=torch.Generator().manual_seed(0))
    model = ClsEncoder()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=256, collate_fn=collate))
    model.eval()
    with torch.no_grad():
        batch = collate(fresh)
        test_acc = float((model(**batch).logits.argmax(-1) == batch["labels"]).float().mean())
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} fresh_test_acc={test_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
