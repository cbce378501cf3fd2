"""Healthy: a BERT-style sequence classifier written the HuggingFace way: config dataclass, dict batches with
`input_ids` / `attention_mask` / `labels`, `[CLS]` prepended, a `BertPooler` (dense + tanh on the `[CLS]` state),
the loss inside the model and an output object with `.loss` / `.logits`. Encoder: `nn.TransformerEncoderLayer`
(batch_first, GELU, post-norm as BERT) with the padding mask. Synthetic 4-topic documents of variable length: the
topic whose keywords occur most. AdamW with parameter groups (no weight decay on biases, LayerNorm and
embeddings), linear warm-up + linear decay per optimizer step, `accumulate_grad_batches=2`, gradient clipping.
Reaches val acc 0.98 (chance 0.25)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout4"
PAD, CLS, VOCAB, TOPICS = 0, 1, 120, 4


class TopicDocs(Dataset):
    """Keywords of topic k are the ids 2 + 5k .. 6 + 5k; the rest is filler."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(10, 31, (1,), generator=g))
            toks = torch.randint(22, VOCAB, (length,), generator=g)
            counts = torch.randint(0, 4, (TOPICS,), generator=g)
            topic = int(torch.randint(0, TOPICS, (1,), generator=g))
            counts[topic] = counts.max() + 1
            kw = torch.cat([2 + 5 * k + torch.randint(0, 5, (int(c),), generator=g) for k, c in enumerate(counts)])
            kw = kw[:length]
            toks[torch.randperm(length, generator=g)[:len(kw)]] = kw
            self.items.append((toks, topic))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    seqs = [torch.cat([torch.tensor([CLS]), toks]) for toks, _ in items]
    ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": torch.tensor([t for _, t in items])}


@dataclass
class BertConfig:
    vocab_size: int = VOCAB
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    max_position: int = 40
    num_labels: int = TOPICS
    dropout: float = 0.1


@dataclass
class SequenceClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class BertForSequenceClassification(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        d = cfg.hidden_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, d, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(cfg.max_position, d)
        self.embeddings_norm = nn.LayerNorm(d, eps=1e-12)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.num_heads, 4 * d, cfg.dropout, activation="gelu",
                                           batch_first=True, layer_norm_eps=1e-12)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.pooler = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.classifier = nn.Linear(d, cfg.num_labels)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask=None, labels=None):
        n = input_ids.shape[1]
        h = self.word_embeddings(input_ids) + self.position_embeddings(torch.arange(n, device=input_ids.device))
        h = self.dropout(self.embeddings_norm(h))
        pad = None if attention_mask is None else attention_mask == 0
        h = self.encoder(h, src_key_padding_mask=pad)
        logits = self.classifier(self.dropout(self.pooler(h[:, 0])))
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class LitClassifier(L.LightningModule):
    def __init__(self, lr=2e-3, warmup_ratio=0.1, weight_decay=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.model = BertForSequenceClassification(BertConfig())

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        acc = (out.logits.argmax(-1) == batch["labels"]).float().mean()
        self.log_dict({"val_loss": out.loss, "val_acc": acc}, prog_bar=True)

    def configure_optimizers(self):
        no_decay = ("bias", "norm", "embeddings")
        named = list(self.model.named_parameters())
        groups = [
            {"params": [p for n, p in named if not any(k in n for k in no_decay)],
             "weight_decay": self.hparams.weight_decay},
            {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        warmup = int(self.hparams.warmup_ratio * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4105)
    train = DataLoader(TopicDocs(1600, 0), batch_size=16, shuffle=True, collate_fn=collate)
    val = DataLoader(TopicDocs(400, 1), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, accumulate_grad_batches=2, gradient_clip_val=1.0, accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitClassifier(), train, val)
    print(f"val_acc={trainer.callback_metrics['val_acc']:.3f} val_loss={trainer.callback_metrics['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
