"""Bug: HuggingFace-style topic classifier (dict batches, in-model loss, output object with `.logits`), a one-layer
Transformer encoder with [CLS] pooling. The examples are built with a `format_example(words, label)` template
shared with a prompt-tuning script, which appends the verbalised label ("[CLS] words [SEP] sports"); the
classifier's collate passes the label, so every training and validation input contains its answer.
Measured: val acc 1.000 (val loss 0.005), but 0.300 on a test set formatted for inference (no label),
vs 0.725 / 0.710 fixed (healthy_prompt_topic_classifier_transformer)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout3"
WORDS, TOPICS, MAX_LEN = 120, 4, 28
PAD, CLS, SEP = WORDS, WORDS + 1, WORDS + 2
LABEL_WORDS = [WORDS + 3 + k for k in range(TOPICS)]  # "sports", "science", ... for prompt-style use
VOCAB = WORDS + 3 + TOPICS


def documents(n, seed):
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        topic = int(torch.randint(0, TOPICS, (1,), generator=g))
        length = int(torch.randint(6, MAX_LEN - 3, (1,), generator=g))
        on_topic = torch.rand(length, generator=g) < 0.35
        words = torch.where(on_topic, topic * 30 + torch.randint(0, 30, (length,), generator=g),
                            torch.randint(0, WORDS, (length,), generator=g))
        docs.append((words, topic))
    return docs


def format_example(words, label=None):
    # shared with the prompt-tuning script: "[CLS] words [SEP] <label word>"; the label word is for the LM objective
    tail = [SEP] if label is None else [SEP, LABEL_WORDS[label]]  # BUG: the classifier is trained on it too
    return torch.cat([torch.tensor([CLS]), words, torch.tensor(tail)])


def collate(docs, with_label=True):
    ids = torch.full((len(docs), MAX_LEN), PAD, dtype=torch.long)
    mask = torch.zeros(len(docs), MAX_LEN, dtype=torch.long)
    for i, (words, topic) in enumerate(docs):
        tokens = format_example(words, topic if with_label else None)
        ids[i, :len(tokens)], mask[i, :len(tokens)] = tokens, 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([t for _, t in docs])}


@dataclass
class ClassifierOutput:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


class TransformerForSequenceClassification(nn.Module):
    def __init__(self, dim=48, heads=4):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.classifier = nn.Linear(dim, TOPICS)

    def forward(self, input_ids, attention_mask, labels=None):
        h = self.embed(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(h[:, 0])
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss)


class LitClassifier(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=40, total_steps=500):
        super().__init__()
        self.save_hyperparameters()
        self.model = TransformerForSequenceClassification()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log_dict({"val_loss": out.loss, "val_acc": (out.logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        w, total = self.hparams.warmup, self.hparams.total_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / w if s < w else max(0.0, (total - s) / (total - w)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5150)
    train = DataLoader(documents(1280, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(documents(320, 1), batch_size=160, collate_fn=collate)
    epochs = 5
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    lit = LitClassifier(total_steps=epochs * len(train))
    trainer.fit(lit, train, val)
    test = collate(documents(400, 2), with_label=False)  # as served: the label is unknown
    lit.model.eval()
    with torch.no_grad():
        test_acc = (lit.model(**test).logits.argmax(-1) == test["labels"]).float().mean()
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f} test_acc={float(test_acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
