"""Bug: BERT-style NER tagger (HF-style `BertForTokenClassification`, -100 on special tokens and padding, dict
batches), AdamW with no decay on biases/LayerNorms and `get_linear_schedule_with_warmup` returned from
`configure_optimizers` with `interval="step"`, so Lightning steps it after every optimizer step; `training_step`
ALSO calls `self.lr_schedulers().step()` (left over from a manual-optimization version of the module). The
schedule runs twice as fast: warm-up lasts half as long and the learning rate reaches 0 halfway through the run,
the second half trains nothing. Data: sentences with 1-3 word names after a trigger word ("mr" -> PER,
"in" -> LOC), names from a shared pool. Measured: val accuracy on entity tokens 0.31, token acc 0.69, vs 0.61 /
0.81 without the extra `step()`."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout7"
PAD, CLS, SEP = 0, 1, 2
MR, IN, NAMES = 3, 4, range(40, 64)  # other words: 5-39
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@dataclass
class BertConfig:
    vocab_size: int = 64
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 32
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    num_labels: int = 5


@dataclass
class TokenClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class NerSentences(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            words, tags = [], []
            while len(words) < 14:
                r = float(torch.rand(1, generator=g))
                span = [NAMES[int(i)] for i in torch.randint(0, 24, (int(torch.randint(1, 4, (1,), generator=g)),),
                                                               generator=g)]
                if r < 0.15 or 0.15 <= r < 0.3:
                    trigger, b = (MR, 1) if r < 0.15 else (IN, 3)
                    words += [trigger] + span
                    tags += [0, b] + [b + 1] * (len(span) - 1)
                elif r < 0.38:  # a name word without a trigger: not an entity
                    words += span[:1]
                    tags += [0]
                else:
                    words.append(int(torch.randint(5, 40, (1,), generator=g)))
                    tags.append(0)
            self.items.append((torch.tensor([CLS] + words + [SEP]), torch.tensor([-100] + tags + [-100])))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    ids = nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True, padding_value=PAD)
    labels = nn.utils.rnn.pad_sequence([y for _, y in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "token_type_ids": torch.zeros_like(ids),
            "labels": labels}


class BertEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        e = self.word_embeddings(input_ids) + self.position_embeddings(pos) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(e))


class BertLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.h, self.d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
        self.query, self.key, self.value = (nn.Linear(cfg.hidden_size, cfg.hidden_size) for _ in range(3))
        self.attn_dropout = nn.Dropout(cfg.attention_probs_dropout_prob)
        self.attn_out = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.intermediate = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.out_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, ext_mask):
        b, t, c = x.shape
        q, k, v = (f(x).view(b, t, self.h, self.d).transpose(1, 2) for f in (self.query, self.key, self.value))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d) + ext_mask
        ctx = (self.attn_dropout(scores.softmax(-1)) @ v).transpose(1, 2).reshape(b, t, c)
        x = self.attn_norm(x + self.dropout(self.attn_out(ctx)))
        return self.out_norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class BertForTokenClassification(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        if isinstance(m, nn.Linear) and m.bias is not None:
            m.bias.data.zero_()
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            m.weight.data[m.padding_idx].zero_()

    def forward(self, input_ids, attention_mask, token_type_ids, labels=None):
        h = self.embeddings(input_ids, token_type_ids)
        ext = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in self.layers:
            h = layer(h, ext)
        logits = self.classifier(self.dropout(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)


class LitBertTagger(L.LightningModule):
    def __init__(self, lr=2e-3, weight_decay=0.01, warmup_ratio=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.model = BertForTokenClassification(BertConfig())

    def forward(self, batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self(batch)
        self.lr_schedulers().step()
        self.log("train_loss", out.loss)
        self.log("lr", self.lr_schedulers().get_last_lr()[0])
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(batch)
        self.log("val_loss", out.loss)
        pred, labels = out.logits.argmax(-1), batch["labels"]
        real, entity = labels != -100, labels > 0
        self.log("val_acc", (pred == labels)[real].float().mean())
        self.log("val_entity_acc", (pred == labels)[entity].float().mean())

    def configure_optimizers(self):
        no_decay = ["bias", "LayerNorm.weight", "_norm.weight"]
        groups = [
            {"params": [p for n, p in self.named_parameters() if not any(nd in n for nd in no_decay)],
             "weight_decay": self.hparams.weight_decay},
            {"params": [p for n, p in self.named_parameters() if any(nd in n for nd in no_decay)],
             "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        warmup = int(self.hparams.warmup_ratio * total)

        def lr_lambda(step):  # transformers.get_linear_schedule_with_warmup
            if step < warmup:
                return float(step) / float(max(1, warmup))
            return max(0.0, float(total - step) / float(max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(7007)
    train = DataLoader(NerSentences(3000, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(NerSentences(300, 1), batch_size=100, collate_fn=collate)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitBertTagger(), train, val)
    print(f"val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"val_entity_acc={float(trainer.callback_metrics['val_entity_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
