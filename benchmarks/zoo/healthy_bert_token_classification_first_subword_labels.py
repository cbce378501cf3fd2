"""Healthy: a BERT-style token classifier (NER) written as `transformers` does: `BertConfig`-like dataclass, word +
position + token-type embeddings with LayerNorm, pre-LN Transformer encoder with GELU, dropout, a linear classifier,
weights `normal(0, initializer_range)`, a `TokenClassifierOutput` with the loss computed inside the model. Words are
split into 1-3 sub-word pieces; as `DataCollatorForTokenClassification` recipes do, only the first piece of each
word carries its BIO label and continuation pieces, `[CLS]`, `[SEP]` and padding get -100. Entity type is decided by
a trigger word before the span (as "Mr" / "in" would), so the model must read context. Dict batches
`input_ids`/`token_type_ids`/`attention_mask`/`labels`, AdamW (no decay on LayerNorm/bias), linear warm-up + linear
decay per step. Reaches val accuracy 0.911 on labelled pieces and entity-token recall 0.827 (tagging everything O:
accuracy 0.719, recall 0)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout5"
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
PAD, CLS, SEP = 0, 1, 2
N_PIECES, N_WORDS = 180, 400
TRIGGER = {"PER": 0, "LOC": 1}  # word ids of the trigger words


def lexicon(seed=21):
    g = torch.Generator().manual_seed(seed)
    words = [(3 + torch.randint(0, N_PIECES, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g)).tolist()
             for _ in range(N_WORDS)]
    words[TRIGGER["PER"]], words[TRIGGER["LOC"]] = [3 + N_PIECES], [4 + N_PIECES]  # frequent words: one piece each
    return words


class NerSentences(Dataset):
    def __init__(self, n, seed, words):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            sent, tags = [], []
            for _ in range(int(torch.randint(2, 5, (1,), generator=g))):
                sent += [int(w) for w in torch.randint(2, N_WORDS, (int(torch.randint(1, 4, (1,), generator=g)),),
                                                      generator=g)]
                tags += ["O"] * (len(sent) - len(tags))
                if torch.rand(1, generator=g) < 0.7:
                    kind = "PER" if torch.rand(1, generator=g) < 0.5 else "LOC"
                    span = int(torch.randint(1, 3, (1,), generator=g))
                    sent.append(TRIGGER[kind])
                    tags.append("O")
                    sent += [int(w) for w in torch.randint(2, N_WORDS, (span,), generator=g)]
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (span - 1)
            ids, labels = [CLS], [-100]
            for w, tag in zip(sent, tags):
                pieces = words[w]
                ids += pieces
                labels += [LABELS.index(tag)] + [-100] * (len(pieces) - 1)  # label the first piece only
            self.items.append((torch.tensor(ids + [SEP]), torch.tensor(labels + [-100])))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    ids, labels = zip(*items)
    input_ids = pad_sequence(ids, batch_first=True, padding_value=PAD)
    return {"input_ids": input_ids, "token_type_ids": torch.zeros_like(input_ids),
            "attention_mask": (input_ids != PAD).long(), "labels": pad_sequence(labels, batch_first=True, padding_value=-100)}


@dataclass
class BertConfig:
    vocab_size: int = 5 + N_PIECES
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    max_position_embeddings: int = 64
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    num_labels: int = len(LABELS)


@dataclass
class TokenClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class BertForTokenClassification(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        layer = nn.TransformerEncoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                                           config.hidden_dropout_prob, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.num_hidden_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        tt = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        h = self.word_embeddings(input_ids) + self.position_embeddings(pos) + self.token_type_embeddings(tt)
        pad = None if attention_mask is None else attention_mask == 0
        h = self.encoder(self.dropout(self.LayerNorm(h)), src_key_padding_mask=pad)
        logits = self.classifier(self.dropout(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.config.num_labels), labels.reshape(-1), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)


class LitNer(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=20, steps=300):
        super().__init__()
        self.save_hyperparameters()
        self.model = BertForTokenClassification(BertConfig())

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        labels, pred = batch["labels"], out.logits.argmax(-1)
        keep, ent = labels != -100, labels > 0
        self.log_dict({"val_loss": out.loss, "val_acc": (pred[keep] == labels[keep]).float().mean(),
                       "val_entity_recall": (pred[ent] == labels[ent]).float().mean()})

    def configure_optimizers(self):
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim < 2 or "LayerNorm" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        w, total = self.hparams.warmup, self.hparams.steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / w, max(0.0, (total - s) / (total - w))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5112)
    words = lexicon()
    train = DataLoader(NerSentences(1920, 0, words), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(NerSentences(300, 1, words), batch_size=300, collate_fn=collate)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, gradient_clip_val=1.0,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitNer(steps=5 * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_acc={float(m['val_acc']):.3f} val_entity_recall={float(m['val_entity_recall']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
