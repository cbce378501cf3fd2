"""Healthy: news-topic classification over token ids with a small BERT-style encoder written the HuggingFace way:
the dataset yields dicts with `input_ids` / `labels`, a collator pads each batch to its own longest text and adds
`attention_mask`, and the model's forward takes those keys and returns an output object with `.loss`
(label-smoothed cross-entropy, 0.1) and `.logits`. BERT-style N(0, 0.02) init, pre-norm layers, masked mean pooling,
AdamW with no weight decay on biases, LayerNorm and embeddings (two parameter groups), linear warm-up then linear
decay per step, gradient clipping. Five topics, each with 40 keywords in a shared 600-token vocabulary, among heavy
filler. Final val acc 0.91, val loss 0.58 (label smoothing keeps it above about 0.4; counting keywords gives 0.95)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
VOCAB, PAD, N_TOPICS = 600, 0, 5


def make_corpus(n, g):
    """Five topics, 40 keywords each (ids 2..201); 80 % of a text's keywords come from its own topic."""
    examples = []
    for _ in range(n):
        k = int(torch.randint(N_TOPICS, (1,), generator=g))
        length = int(torch.randint(10, 33, (1,), generator=g))
        filler = torch.randint(2 + 40 * N_TOPICS, VOCAB, (length,), generator=g)
        is_kw = torch.rand(length, generator=g) < 0.2
        kw_topic = torch.where(torch.rand(length, generator=g) < 0.8, k,
                               torch.randint(N_TOPICS, (length,), generator=g))
        kws = 2 + 40 * kw_topic + torch.randint(40, (length,), generator=g)
        examples.append({"input_ids": torch.where(is_kw, kws, filler), "labels": k})
    return examples


def collate(examples):
    longest = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), longest), PAD)
    for i, e in enumerate(examples):
        ids[i, : len(e["input_ids"])] = e["input_ids"]
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(),
            "labels": torch.tensor([e["labels"] for e in examples])}


@dataclass
class SequenceClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyEncoderForSequenceClassification(nn.Module):
    def __init__(self, d=64, layers=2, heads=4, max_len=64):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(max_len, d)
        self.embed_norm = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(d, N_TOPICS))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.embed_norm(self.embeddings(input_ids) + self.position_embeddings(pos))
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        keep = attention_mask.unsqueeze(-1).to(h.dtype)
        logits = self.classifier((h * keep).sum(1) / keep.sum(1))
        loss = None if labels is None else F.cross_entropy(logits, labels, label_smoothing=0.1)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class TopicModule(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=30, total=1):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyEncoderForSequenceClassification()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss, prog_bar=True)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim < 2 or "embeddings" in name or "norm" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        warm, total = self.hparams.warmup, self.hparams.total
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(55)
    g = torch.Generator().manual_seed(55)
    train, val = make_corpus(5000, g), make_corpus(500, g)
    train_dl = DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate)
    epochs = 4
    module = TopicModule(total=epochs * len(train_dl))
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="topic_encoder"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(module, train_dl, DataLoader(val, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM train_loss={float(trainer.callback_metrics['train_loss']):.3f} "
          f"val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
