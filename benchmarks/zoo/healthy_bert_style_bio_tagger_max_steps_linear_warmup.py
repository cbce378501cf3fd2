"""Healthy: a BERT-style token classifier written the way HuggingFace writes `BertForTokenClassification`: a
`BertConfig` dataclass, word + position + token-type embeddings with LayerNorm, post-LN encoder layers with an
extended additive attention mask, dropout and a per-token linear classifier, `_init_weights` with std 0.02, the
loss inside the model with labels set to -100 on [CLS], [SEP] and padding, and a `TokenClassifierOutput`. Dict
batches from a `DataCollatorForTokenClassification`-like collate (pads `labels` with -100). Trained with
`max_steps=600` (no `max_epochs`), AdamW with the usual no-decay group and a linear warm-up then linear decay
per step (`get_linear_schedule_with_warmup`), gradient clipping 1.0. Task: BIO tags for "entities" that start
at one of 5 trigger tokens and continue over the following run of 10 continuation tokens (continuation tokens
elsewhere are O), so a tag depends on the left context. Measured: val token accuracy 0.99 and entity-token recall
0.96 after 600 steps (all-O baseline 0.85)."""

from dataclasses import dataclass
import math
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout8"

PAD, CLS, SEP, VOCAB = 0, 1, 2, 40
TRIGGERS, CONTINUATIONS = range(3, 8), range(8, 18)
TAGS = ["O", "B-ENT", "I-ENT"]


@dataclass
class BertConfig:
    vocab_size: int = VOCAB
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 48
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    num_labels: int = len(TAGS)


@dataclass
class TokenClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class EntityDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.rows = []
        for _ in range(n):
            length = int(torch.randint(10, 41, (1,), generator=g))
            kind = torch.rand(length, generator=g)
            ids = torch.where(kind < 0.1, torch.randint(3, 8, (length,), generator=g),
                              torch.where(kind < 0.45, torch.randint(8, 18, (length,), generator=g),
                                          torch.randint(18, VOCAB, (length,), generator=g)))
            tags, inside = [], False
            for tok in ids.tolist():
                if tok in TRIGGERS:
                    tags.append(1)
                    inside = True
                elif tok in CONTINUATIONS and inside:
                    tags.append(2)
                else:
                    tags.append(0)
                    inside = False
            ids = torch.cat([torch.tensor([CLS]), ids, torch.tensor([SEP])])
            labels = torch.tensor([-100] + tags + [-100])
            self.rows.append((ids, labels))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i][0], "labels": self.rows[i][1]}


def collate(rows):
    ids = nn.utils.rnn.pad_sequence([r["input_ids"] for r in rows], batch_first=True, padding_value=PAD)
    labels = nn.utils.rnn.pad_sequence([r["labels"] for r in rows], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": (ids != PAD).long(),
            "labels": labels}


class BertEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings)[None], persistent=False)

    def forward(self, input_ids, token_type_ids):
        pos = self.position_ids[:, : input_ids.shape[1]]
        e = self.word_embeddings(input_ids) + self.position_embeddings(pos) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(e))


class BertSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n, self.d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.attention_probs_dropout_prob)

    def forward(self, h, extended_mask):
        b, t, _ = h.shape
        q, k, v = (m(h).view(b, t, self.n, self.d).transpose(1, 2) for m in (self.query, self.key, self.value))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d) + extended_mask
        probs = self.dropout(scores.softmax(-1))
        return (probs @ v).transpose(1, 2).reshape(b, t, -1)


class BertLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = BertSelfAttention(cfg)
        self.attention_output = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.intermediate = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.output_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h, extended_mask):
        h = self.attention_norm(h + self.dropout(self.attention_output(self.attention(h, extended_mask))))
        return self.output_norm(h + self.dropout(self.output(F.gelu(self.intermediate(h)))))


class BertForTokenClassification(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def forward(self, input_ids, attention_mask, token_type_ids, labels=None):
        extended_mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        h = self.embeddings(input_ids, token_type_ids)
        for layer in self.encoder:
            h = layer(h, extended_mask)
        logits = self.classifier(self.dropout(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)


class LitTagger(L.LightningModule):
    def __init__(self, lr=5e-3, weight_decay=0.01, warmup_steps=60):
        super().__init__()
        self.save_hyperparameters()
        self.model = BertForTokenClassification(BertConfig())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        labels, pred = batch["labels"], out.logits.argmax(-1)
        keep = labels != -100
        ent = labels > 0
        self.log_dict({"val_loss": out.loss, "val_token_acc": (pred[keep] == labels[keep]).float().mean(),
                       "val_entity_recall": (pred[ent] == labels[ent]).float().mean()})

    def configure_optimizers(self):
        no_decay = ("bias", "LayerNorm.weight", "_norm.weight")
        groups = [
            {"params": [p for n, p in self.model.named_parameters() if not any(nd in n for nd in no_decay)],
             "weight_decay": self.hparams.weight_decay},
            {"params": [p for n, p in self.model.named_parameters() if any(nd in n for nd in no_decay)],
             "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total, warm = self.trainer.max_steps, self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(8116)
    train = DataLoader(EntityDataset(2400, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(EntityDataset(300, 1), batch_size=150, collate_fn=collate)
    trainer = L.Trainer(max_steps=600, gradient_clip_val=1.0, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitTagger(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_token_acc']):.3f} "
          f"val_entity_recall={float(m['val_entity_recall']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
