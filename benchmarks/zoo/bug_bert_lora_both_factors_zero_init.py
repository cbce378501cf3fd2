"""Bug: LoRA fine-tuning of a frozen "pretrained" BERT-style encoder (HuggingFace + PEFT style: `query` / `key` /
`value` Linear layers, `LoraLinear` on `query` and `value`, classification head trainable as `modules_to_save`,
dict batches with `input_ids` / `token_type_ids` / `attention_mask` / `labels`, loss inside the model) whose
adapter initialises both factors to zero "so that training starts from the pretrained model". Only B should be
zero: with A = 0 too, the gradient of B is proportional to A and the gradient of A to B, so both stay exactly zero
and the adapters never train; only the head learns, on frozen features. Val acc 0.69 vs 0.92 with A
Kaiming-initialised. AdamW on the trainable parameters, linear warm-up + cosine per step."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout4"
PAD, CLS, SEP, VOCAB, SEG = 0, 1, 2, 100, 8


def pairs(n, seed):
    """Positive keywords are ids 3..12, negative 13..22; label = segment b holds more positive than negative ones."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.empty(n, 2 * SEG + 3, dtype=torch.long)
    labels = torch.empty(n, dtype=torch.long)
    for i in range(n):
        a = torch.randint(23, VOCAB, (SEG,), generator=g)
        b = torch.randint(23, VOCAB, (SEG,), generator=g)
        n_pos, n_neg = torch.randint(0, 4, (2,), generator=g).tolist()
        if n_pos == n_neg:
            n_pos += 1
        where = torch.randperm(SEG, generator=g)[:n_pos + n_neg]
        b[where[:n_pos]] = torch.randint(3, 13, (n_pos,), generator=g)
        b[where[n_pos:]] = torch.randint(13, 23, (n_neg,), generator=g)
        labels[i] = int(n_pos > n_neg)
        ids[i] = torch.cat([torch.tensor([CLS]), a, torch.tensor([SEP]), b, torch.tensor([SEP])])
    types = torch.cat([torch.zeros(SEG + 2), torch.ones(SEG + 1)]).long().expand(n, -1)
    return TensorDataset(ids, types, labels)


def collate(rows):
    ids, types, labels = (torch.stack(t) for t in zip(*rows))
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": torch.ones_like(ids), "labels": labels}


@dataclass
class BertConfig:
    vocab_size: int = VOCAB
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    max_position: int = 32
    num_labels: int = 2


@dataclass
class SequenceClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class BertSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.h, self.d = cfg.num_heads, cfg.hidden_size
        self.query, self.key, self.value = (nn.Linear(self.d, self.d) for _ in range(3))
        self.output = nn.Linear(self.d, self.d)

    def forward(self, x, mask):
        b, n, _ = x.shape
        q, k, v = (f(x).view(b, n, self.h, -1).transpose(1, 2) for f in (self.query, self.key, self.value))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :].bool())
        return self.output(att.transpose(1, 2).reshape(b, n, self.d))


class BertLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        self.attention = BertSelfAttention(cfg)
        self.attention_norm = nn.LayerNorm(d, eps=1e-12)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.ffn_norm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, mask):
        x = self.attention_norm(x + self.attention(x, mask))
        return self.ffn_norm(x + self.ffn(x))


class BertForSequenceClassification(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        d = cfg.hidden_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, d)
        self.position_embeddings = nn.Embedding(cfg.max_position, d)
        self.token_type_embeddings = nn.Embedding(2, d)
        self.embeddings_norm = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_layers))
        self.classifier = nn.Linear(d, cfg.num_labels)

    def forward(self, input_ids, token_type_ids, attention_mask, labels=None):
        n = input_ids.shape[1]
        h = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        h = self.embeddings_norm(h + self.position_embeddings(torch.arange(n, device=input_ids.device)))
        for layer in self.layers:
            h = layer(h, attention_mask)
        logits = self.classifier(h[:, 0])
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def load_pretrained(cfg):
    """Stands in for `from_pretrained`: fixed weights from a seeded generator, not from the global RNG."""
    model = BertForSequenceClassification(cfg)
    g = torch.Generator().manual_seed(2024)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                continue
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if "embeddings" in name else 1 / math.sqrt(p.shape[-1])))
    return model


class LoraLinear(nn.Module):
    def __init__(self, base: nn.Linear, r=8, alpha=16):
        super().__init__()
        self.base, self.scaling = base, alpha / r
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        # start as the identity update, as the LoRA paper says
        nn.init.zeros_(self.lora_A.weight)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def add_lora(model, targets=("query", "value")):
    model.requires_grad_(False)
    for layer in model.layers:
        for t in targets:
            setattr(layer.attention, t, LoraLinear(getattr(layer.attention, t)))
    model.classifier.requires_grad_(True)  # modules_to_save
    return model


class LitLora(L.LightningModule):
    def __init__(self, lr=1e-2, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.model = add_lora(load_pretrained(BertConfig()))

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log_dict({"val_loss": out.loss, "val_acc": (out.logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr,
                                weight_decay=0.0)
        total, w = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * (s - w) / max(1, total - w))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4106)
    train = DataLoader(pairs(2000, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(pairs(400, 1), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitLora(), train, val)
    print(f"val_acc={trainer.callback_metrics['val_acc']:.3f} val_loss={trainer.callback_metrics['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
