"""Healthy: a BERT-style token classifier (NER) written as HuggingFace code is: a config dataclass, dict batches
with `input_ids` / `attention_mask` / `pos_ids` / `labels`, a `[CLS]` token prepended by the collate with label
-100, padding labelled -100, the loss computed inside the model, which returns an output object with `.loss`
and `.logits` (as `BertForTokenClassification`). Part-of-speech tags are fed as an extra embedding, as feature-rich
NER taggers do. Synthetic sentences: a token is tagged ENT when it follows a trigger word, NUM when it is a number
word, O otherwise. AdamW with no weight decay on biases/LayerNorm, linear warm-up + linear decay per step,
`val_check_interval=0.5`. Reaches val token accuracy 0.95 (majority tag O alone: ~0.76)."""

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
PAD, CLS, VOCAB, NUM_TAGS, N_POS = 0, 1, 60, 3, 5
TRIGGERS = (2, 3, 4, 5)


def pos_of(tok):
    # a deterministic "tagger": determiners, numbers, verbs, nouns
    return 1 if tok in TRIGGERS else 2 if tok >= 50 else 3 + tok % 2


class NerSentences(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(6, 17, (1,), generator=g))
            toks = torch.randint(2, VOCAB, (length,), generator=g).tolist()
            tags = [0] * length
            for i, t in enumerate(toks):
                if t >= 50:
                    tags[i] = 2
                elif i > 0 and toks[i - 1] in TRIGGERS:
                    tags[i] = 1
            self.items.append({"tokens": toks, "pos_tags": [pos_of(t) for t in toks], "ner_tags": tags})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(examples):
    n = max(len(ex["tokens"]) for ex in examples) + 1
    ids = torch.full((len(examples), n), PAD)
    pos = torch.zeros((len(examples), n), dtype=torch.long)
    labels = torch.full((len(examples), n), -100)
    for i, ex in enumerate(examples):
        k = len(ex["tokens"])
        ids[i, 0] = CLS
        ids[i, 1:k + 1] = torch.tensor(ex["tokens"])
        pos[i, 1:k + 1] = torch.tensor(ex["pos_tags"])
        labels[i, 1:k + 1] = torch.tensor(ex["ner_tags"])
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "pos_ids": pos, "labels": labels}


@dataclass
class BertConfig:
    vocab_size: int = VOCAB
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    max_position: int = 32
    num_labels: int = NUM_TAGS
    dropout: float = 0.1


@dataclass
class TokenClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class BertForTokenClassification(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        d = cfg.hidden_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, d, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(cfg.max_position, d)
        self.pos_tag_embeddings = nn.Embedding(N_POS, d)
        self.emb_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.num_heads, 4 * d, cfg.dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(d, cfg.num_labels)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask=None, pos_ids=None, labels=None):
        n = input_ids.shape[1]
        h = self.word_embeddings(input_ids) + self.position_embeddings(torch.arange(n, device=input_ids.device))
        if pos_ids is not None:
            h = h + self.pos_tag_embeddings(pos_ids)
        h = self.dropout(self.emb_norm(h))
        pad = None if attention_mask is None else attention_mask == 0
        logits = self.classifier(self.encoder(h, src_key_padding_mask=pad))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)


class LitNer(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.model = BertForTokenClassification(BertConfig())

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        keep = batch["labels"] != -100
        acc = (out.logits.argmax(-1)[keep] == batch["labels"][keep]).float().mean()
        self.log_dict({"val_loss": out.loss, "val_acc": acc}, prog_bar=True)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2 or "embeddings" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total, w = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / w if s < w else max(0.0, (total - s) / max(1, total - w)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4101)
    train = DataLoader(NerSentences(1500, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(NerSentences(300, 1), batch_size=100, collate_fn=collate)
    trainer = L.Trainer(max_epochs=5, val_check_interval=0.5, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitNer(), train, val)
    print(f"val_acc={trainer.callback_metrics['val_acc']:.3f} val_loss={trainer.callback_metrics['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
