"""Healthy: binary review sentiment with a DistilBERT-style classifier written the way HuggingFace writes
`DistilBertForSequenceClassification`: a config dataclass, `Embeddings` (word + position, LayerNorm, dropout),
`TransformerBlock`s with `q_lin/k_lin/v_lin/out_lin`, `sa_layer_norm`, `ffn.lin1/lin2`, `output_layer_norm`
(post-LN), `pre_classifier` + ReLU + dropout + `classifier` on the [CLS] hidden state, the loss inside the model,
dict batches `input_ids`/`attention_mask`/`labels`. Synthetic raw reviews (mixed case, punctuation) with a 1-5 star
rating; text is normalised (lower-cased, punctuation stripped) before a word-level tokenizer fitted on the training
texts; labels are `stars >= 4` (3-star reviews dropped). AdamW (no decay on biases/LayerNorm), linear warm-up then
linear decay per step, as `get_linear_schedule_with_warmup`. Reaches val accuracy ~0.92 (5 % of reviews contradict
their stars)."""

import math
import re
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout9"
POS = ["great", "excellent", "love", "perfect", "amazing", "recommend", "happy", "works", "sturdy", "fast"]
NEG = ["awful", "broken", "refund", "terrible", "waste", "poor", "returned", "disappointed", "cheap", "slow"]
FILL = ["the", "a", "it", "this", "product", "i", "was", "is", "and", "with", "for", "my", "after", "day", "box",
        "use", "very", "really", "quite", "just", "but", "to", "of", "in", "on", "battery", "size", "color", "price"]


def make_reviews(n, seed):
    """(raw text, stars 1-5): cue words of the star's polarity among filler, mixed case, punctuation."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        stars = int(torch.randint(1, 6, (1,), generator=g))
        polarity = 0.0 if stars == 3 else (1.0 if stars >= 4 else -1.0)
        if float(torch.rand(1, generator=g)) < 0.05:
            polarity = -polarity
        words = []
        for _ in range(int(torch.randint(8, 25, (1,), generator=g))):
            r = float(torch.rand(1, generator=g))
            if r < 0.25:
                pool = POS if (polarity > 0 or (polarity == 0 and r < 0.125)) else NEG
                w = pool[int(torch.randint(len(pool), (1,), generator=g))]
            elif r < 0.28:
                pool = NEG if polarity > 0 else POS
                w = pool[int(torch.randint(len(pool), (1,), generator=g))]
            else:
                w = FILL[int(torch.randint(len(FILL), (1,), generator=g))]
            style = float(torch.rand(1, generator=g))
            w = w.upper() if style < 0.15 else (w.capitalize() if style < 0.35 else w)
            words.append(w + ("!" if float(torch.rand(1, generator=g)) < 0.1 else ""))
        out.append((" ".join(words) + ".", stars))
    return out


def normalize(text):
    return re.sub(r"[^a-z ]", "", text.lower())


class WordTokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, **{w: i + 3 for i, w in enumerate(words)}}

    def encode(self, text):
        return [2] + [self.vocab.get(w, 1) for w in text.split()]


class ReviewDataset(Dataset):
    def __init__(self, reviews, tokenizer):
        kept = [(t, s) for t, s in reviews if s != 3]
        self.items = [(torch.tensor(tokenizer.encode(normalize(t))), int(s >= 4)) for t, s in kept]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    for i, (ids, _) in enumerate(batch):
        input_ids[i, : len(ids)] = ids
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long(),
            "labels": torch.tensor([y for _, y in batch])}


@dataclass
class DistilBertConfig:
    vocab_size: int = 64
    max_position_embeddings: int = 64
    dim: int = 64
    n_heads: int = 4
    n_layers: int = 2
    hidden_dim: int = 128
    dropout: float = 0.1
    attention_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    num_labels: int = 2
    initializer_range: float = 0.02


@dataclass
class SequenceClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class Embeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=1e-12)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.size(1), device=input_ids.device)
        return self.dropout(self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(pos)))


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_heads, self.dim = config.n_heads, config.dim
        self.q_lin, self.k_lin = nn.Linear(config.dim, config.dim), nn.Linear(config.dim, config.dim)
        self.v_lin, self.out_lin = nn.Linear(config.dim, config.dim), nn.Linear(config.dim, config.dim)
        self.dropout = nn.Dropout(config.attention_dropout)

    def forward(self, x, mask):
        b, t, _ = x.shape
        dh = self.dim // self.n_heads
        q, k, v = (lin(x).view(b, t, self.n_heads, dh).transpose(1, 2) for lin in (self.q_lin, self.k_lin, self.v_lin))
        scores = (q / math.sqrt(dh)) @ k.transpose(2, 3)
        scores = scores.masked_fill((mask == 0)[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = self.dropout(scores.softmax(-1))
        return self.out_lin((weights @ v).transpose(1, 2).reshape(b, t, self.dim))


class TransformerBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = MultiHeadSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.ffn = nn.ModuleDict({"lin1": nn.Linear(config.dim, config.hidden_dim),
                                  "lin2": nn.Linear(config.hidden_dim, config.dim)})
        self.ffn_dropout = nn.Dropout(config.dropout)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)

    def forward(self, x, mask):
        x = self.sa_layer_norm(self.attention(x, mask) + x)
        ffn = self.ffn_dropout(self.ffn["lin2"](F.gelu(self.ffn["lin1"](x))))
        return self.output_layer_norm(ffn + x)


class DistilBertForSequenceClassification(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layer = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.embeddings(input_ids)
        for block in self.layer:
            x = block(x, attention_mask)
        pooled = self.dropout(F.relu(self.pre_classifier(x[:, 0])))
        logits = self.classifier(pooled)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits)


class LitSentiment(L.LightningModule):
    def __init__(self, vocab_size, lr=1e-3, warmup_ratio=0.1, total_steps=300):
        super().__init__()
        self.save_hyperparameters()
        self.model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=vocab_size))

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        groups = [
            {"params": [p for n, p in self.named_parameters() if not n.endswith(no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in self.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = self.hparams.total_steps
        warmup = int(self.hparams.warmup_ratio * total)

        def lr_lambda(step):
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(9103)
    train_raw, val_raw = make_reviews(2000, 0), make_reviews(400, 1)
    tokenizer = WordTokenizer([normalize(t) for t, _ in train_raw])
    train = DataLoader(ReviewDataset(train_raw, tokenizer), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ReviewDataset(val_raw, tokenizer), batch_size=64, collate_fn=collate)
    epochs = 6
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    model = LitSentiment(len(tokenizer.vocab), total_steps=epochs * len(train))
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
