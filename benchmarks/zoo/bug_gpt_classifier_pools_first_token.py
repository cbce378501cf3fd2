"""Bug: a decoder-only (causal) Transformer used as a sequence classifier (HuggingFace-style dict batches, loss
inside the model, `.loss` / `.logits`) that pools the hidden state at position 0, a habit from BERT's [CLS]
token. Under the causal mask position 0 has attended only to itself, and every text starts with the same BOS
token: the pooled vector, and so the prediction, is the same for every input. Should pool the last real token
(attention_mask.sum(1) - 1), as GPT2ForSequenceClassification does. "Sentiment" over 60 words, AdamW with warm-up
and cosine. Measured: val acc 0.510 / val loss 0.693 (label entropy 0.693, majority
0.51), vs 0.940 / 0.161 pooling the last real token (healthy_gpt_sequence_classifier_last_token)."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"constant-output", "loss-trend"}
SPLIT = "heldout2"
WORDS, PAD, BOS, VOCAB, MAX_LEN = 60, 60, 61, 62, 25


def sentiment_texts(n, seed):
    g = torch.Generator().manual_seed(seed)
    texts = []
    while len(texts) < n:
        length = int(torch.randint(8, MAX_LEN, (1,), generator=g))
        kind = torch.rand(length, generator=g)
        words = torch.where(kind < 0.15, torch.randint(0, 10, (length,), generator=g),
                            torch.where(kind < 0.3, torch.randint(10, 20, (length,), generator=g),
                                        torch.randint(20, WORDS, (length,), generator=g)))
        pos, neg = int((words < 10).sum()), int(((words >= 10) & (words < 20)).sum())
        if pos != neg:
            texts.append((torch.cat([torch.tensor([BOS]), words]), int(pos > neg)))
    return texts


def collate(items):
    ids = nn.utils.rnn.pad_sequence([t for t, _ in items], batch_first=True, padding_value=PAD)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": torch.tensor([c for _, c in items])}


@dataclass
class SequenceClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class TinyGPTForSequenceClassification(nn.Module):
    def __init__(self, dim=64, layers=2, heads=4, num_labels=2):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, dim)
        self.wpe = nn.Embedding(MAX_LEN + 1, dim)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, num_labels, bias=False)

    def forward(self, input_ids, attention_mask, labels=None):
        n = input_ids.shape[1]
        h = self.wte(input_ids) + self.wpe(torch.arange(n, device=input_ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(n, device=input_ids.device)
        h = self.ln_f(self.blocks(h, mask=causal, is_causal=True))
        logits = self.score(h[:, 0])  # BUG: BERT's [CLS] habit; under a causal mask position 0 has seen only BOS
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss, logits)


class LitClassifier(L.LightningModule):
    def __init__(self, lr=1e-3, warmup=20, total=400):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPTForSequenceClassification()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        w, total = self.hparams.warmup, self.hparams.total
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - w) / (total - w)))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2110)
    train = DataLoader(sentiment_texts(1800, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(sentiment_texts(400, 1), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitClassifier(total=6 * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
