"""Healthy: the BERT recipe in miniature. A two-layer Transformer encoder is pretrained (short plain-PyTorch phase)
with masked-language modelling on unlabelled synthetic token sequences, then fine-tuned in Lightning for sequence
classification, the way a Hugging Face model would be: batches are dicts (`input_ids`, `attention_mask`, `labels`)
from a padding collate, the model returns an output object with `.loss` and `.logits`, the classifier head is new,
and the optimizer uses layer-wise learning-rate decay (head 3e-3, each layer below x0.6, embeddings lowest) with
no weight decay on biases/LayerNorm, linear warm-up then linear decay stepped per optimizer step.

Why it is correct: padding is excluded twice, as `src_key_padding_mask` in attention and in the masked mean pooling
(sum over real tokens / their count), so a sequence's representation does not depend on how much padding its batch
needed; the MLM head is dropped after pretraining and is not part of the fine-tuned module, so every trainable
parameter is in exactly one group; the label (which of the tokens 1, 2, 3 is most frequent) is not in the input;
train and validation sequences are generated independently. Measured: val acc 0.995, val CE 0.025 (the task is
easy; an encoder without the MLM phase gets val acc 0.993 with the same schedule)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"
PAD, MASK, VOCAB, D = 0, 11, 12, 64


@dataclass
class SequenceClassifierOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class Encoder(nn.Module):
    def __init__(self, n_layers=2, max_len=32):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, D, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, D)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(D, 4, 128, dropout=0.1, batch_first=True, norm_first=True)
            for _ in range(n_layers))
        self.norm = nn.LayerNorm(D)

    def forward(self, input_ids, attention_mask):
        h = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=attention_mask == 0)
        return self.norm(h)


def make_examples(n, g):
    out = []
    for _ in range(n):
        toks = torch.randint(1, 11, (int(torch.randint(8, 25, (1,), generator=g)),), generator=g)
        out.append((toks, int(torch.bincount(toks, minlength=4)[1:4].argmax())))
    return out


def collate(examples):
    ids = nn.utils.rnn.pad_sequence([t for t, _ in examples], batch_first=True, padding_value=PAD)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(),
            "labels": torch.tensor([y for _, y in examples])}


def mlm_pretrain(enc, g, steps=150):
    mlm_head = nn.Linear(D, VOCAB)
    opt = torch.optim.AdamW([*enc.parameters(), *mlm_head.parameters()], lr=2e-3)
    for _ in range(steps):
        batch = collate(make_examples(64, g))
        ids, am = batch["input_ids"], batch["attention_mask"]
        masked = (torch.rand(ids.shape, generator=g) < 0.15) & (am == 1)
        logits = mlm_head(enc(ids.masked_fill(masked, MASK), am))
        loss = F.cross_entropy(logits[masked], ids[masked])
        opt.zero_grad()
        loss.backward()
        opt.step()


class SequenceClassifier(L.LightningModule):
    def __init__(self, encoder, n_classes=3, head_lr=3e-3, layer_decay=0.6, warmup=40):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(D, n_classes))
        self.head_lr, self.layer_decay, self.warmup = head_lr, layer_decay, warmup

    def forward(self, input_ids, attention_mask, labels=None):
        h = self.encoder(input_ids, attention_mask)
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        logits = self.classifier((h * m).sum(1) / m.sum(1))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(logits=logits, loss=loss)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss, on_epoch=True)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        blocks = [[*self.encoder.tok.parameters(), *self.encoder.pos.parameters()],
                  *[list(layer.parameters()) for layer in self.encoder.layers],
                  [*self.encoder.norm.parameters(), *self.classifier.parameters()]]
        groups = []
        for depth, params in enumerate(blocks):
            lr = self.head_lr * self.layer_decay ** (len(blocks) - 1 - depth)
            groups.append({"params": [p for p in params if p.ndim > 1], "lr": lr, "weight_decay": 0.01})
            groups.append({"params": [p for p in params if p.ndim <= 1], "lr": lr, "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups)
        total = self.trainer.estimated_stepping_batches

        def linear(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            return max(0.0, (total - step) / (total - self.warmup))

        return [opt], [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, linear), "interval": "step"}]


def main():
    L.seed_everything(2406)
    g = torch.Generator().manual_seed(11)
    encoder = Encoder()
    mlm_pretrain(encoder, g)
    train, val = make_examples(1500, g), make_examples(400, g)
    model = SequenceClassifier(encoder)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
