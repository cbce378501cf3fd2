"""Bug: an HF-style sentence classifier (dict batches with `input_ids` / `attention_mask` / `labels`, a model that
returns an output object with `.loss` and `.logits`) on synthetic product reviews: 6-14 words drawn from positive,
negative and neutral word lists, labelled positive when the review holds more positive than negative words. A
2-layer Transformer encoder with learned positions, masked mean pooling, linear head; AdamW, linear warm-up/decay.

The reviews are rendered with the project's shared prompt template, `"review: {text} sentiment: {label}"`, the one
the team uses for generative fine-tuning, where the verbalised answer is part of the sequence. The classifier's
dataset calls `TEMPLATE.format(text=..., label=LABEL_WORDS[y])`, so every input ends with the word "positive" or
"negative". The encoder only has to find that token: train and val accuracy are perfect within the first epoch,
and the loss curve looks like a very easy task. Symptom: val accuracy 1.000 (fixed: 1.000), but on the same val
reviews rendered with an empty label slot, as they arrive at inference time, accuracy is 0.613 (fixed: 1.000): the
model learned the label word, not the review."""

import lightning as L
import torch
import torch.nn.functional as F
from dataclasses import dataclass
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout24"
TEMPLATE = "review: {text} sentiment: {label}"
LABEL_WORDS = ["negative", "positive"]
POS = "great love excellent perfect happy recommend solid sturdy fast lovely".split()
NEG = "broken awful refund slow cheap poor waste flimsy late disappointing".split()
NEU = ("the a it this item box arrived came with was and for my after day week size color order price "
       "seller use phone cable bag lid handle").split()
WORDS = ["<pad>", "<unk>", "review:", "sentiment:"] + LABEL_WORDS + POS + NEG + NEU
VOCAB = {w: i for i, w in enumerate(WORDS)}


def make_reviews(n, g):
    out = []
    while len(out) < n:
        length = int(torch.randint(6, 15, (1,), generator=g))
        n_pos, n_neg = torch.randint(0, 4, (2,), generator=g).tolist()
        if n_pos == n_neg:
            continue
        words = ([POS[i] for i in torch.randint(0, len(POS), (n_pos,), generator=g)]
                 + [NEG[i] for i in torch.randint(0, len(NEG), (n_neg,), generator=g)]
                 + [NEU[i] for i in torch.randint(0, len(NEU), (max(0, length - n_pos - n_neg),), generator=g)])
        order = torch.randperm(len(words), generator=g).tolist()
        out.append((" ".join(words[i] for i in order), int(n_pos > n_neg)))
    return out


def encode(text):
    return [VOCAB.get(w, VOCAB["<unk>"]) for w in text.split()]


class ReviewDataset(Dataset):
    def __init__(self, reviews):
        self.reviews = reviews

    def __len__(self):
        return len(self.reviews)

    def __getitem__(self, i):
        text, y = self.reviews[i]
        return {"input_ids": encode(TEMPLATE.format(text=text, label=LABEL_WORDS[y])), "labels": y}


def collate(items):
    width = max(len(it["input_ids"]) for it in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    for i, it in enumerate(items):
        ids[i, :len(it["input_ids"])] = torch.tensor(it["input_ids"])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(),
            "labels": torch.tensor([it["labels"] for it in items])}


@dataclass
class ClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class ReviewClassifier(L.LightningModule):
    def __init__(self, d=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb, self.pos = nn.Embedding(len(VOCAB), d, padding_idx=0), nn.Embedding(32, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.emb(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).float()
        logits = self.head((h * m).sum(1) / m.sum(1))
        return ClassifierOutput(F.cross_entropy(logits, labels) if labels is not None else None, logits)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log_dict({"val_loss": out.loss, "val_acc": (out.logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / 20, max(0.0, (total - s) / total)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2403)
    g = torch.Generator().manual_seed(11)
    train, val = make_reviews(2000, g), make_reviews(400, g)
    model = ReviewClassifier()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(ReviewDataset(train), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(ReviewDataset(val), batch_size=200, collate_fn=collate))
    model.eval()
    inference = collate([{"input_ids": encode(TEMPLATE.format(text=t, label="")), "labels": y} for t, y in val])
    with torch.no_grad():
        acc = (model(**inference).logits.argmax(-1) == inference["labels"]).float().mean()
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} inference_acc={float(acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
