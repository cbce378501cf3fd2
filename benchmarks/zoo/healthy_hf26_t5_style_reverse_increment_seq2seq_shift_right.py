"""Healthy: a T5/BART-style encoder-decoder written by hand in plain torch on a synthetic translation task: the source
is 3-10 digit tokens, the target is the source reversed with every digit incremented mod 10 ("3 1 4" -> "5 2 4").
The collate returns dict batches with `input_ids` / `attention_mask` for the encoder (right-padded) and `labels`
(target + EOS, -100 on padding); the model builds `decoder_input_ids` itself with `shift_tokens_right` like HF
seq2seq models, computes the loss inside and returns an output object with `.loss` and `.logits`.

Why it is correct: `shift_tokens_right` replaces -100 by the pad id, moves everything one step to the right and puts
the decoder start token in front, so decoder position t sees target tokens < t only; the decoder uses a strict causal
mask plus its own key padding mask, the cross-attention masks the encoder padding; the token embedding is shared by
encoder, decoder and the tied LM head (scaled by d**-0.5 like T5); AdamW with a no-decay group and linear warm-up +
decay stepped per step. Measured: val loss 0.17 and teacher-forced exact match 0.79 on held-out sources, from ln(13)
at init."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout26"
PAD, START, EOS = 0, 1, 2
VOCAB = 13


def make_pairs(n, g):
    pairs = []
    for _ in range(n):
        src = torch.randint(0, 10, (int(torch.randint(3, 11, (1,), generator=g)),), generator=g)
        tgt = ((src.flip(0) + 1) % 10)
        pairs.append((src + 3, tgt + 3))
    return pairs


def collate(batch):
    src_w, tgt_w = max(len(s) for s, _ in batch), max(len(t) for _, t in batch) + 1
    ids = torch.full((len(batch), src_w), PAD)
    labels = torch.full((len(batch), tgt_w), -100)
    for i, (s, t) in enumerate(batch):
        ids[i, :len(s)] = s
        labels[i, :len(t) + 1] = torch.cat([t, torch.tensor([EOS])])
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


def shift_tokens_right(labels, pad_id, start_id):
    shifted = torch.full_like(labels, pad_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = start_id
    return shifted.masked_fill(shifted == -100, pad_id)


@dataclass
class Seq2SeqLMOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyT5(nn.Module):
    def __init__(self, d=64, heads=4, layers=2, max_len=16):
        super().__init__()
        self.d = d
        self.shared, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(max_len, d)
        self.transformer = nn.Transformer(d, heads, layers, layers, 4 * d, dropout=0.1, batch_first=True,
                                          norm_first=True)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.lm_head.weight = self.shared.weight

    def embed(self, ids):
        return self.shared(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))[None]

    def forward(self, input_ids, attention_mask, labels=None, decoder_input_ids=None):
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, PAD, START)
        t = decoder_input_ids.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=input_ids.device), 1)
        h = self.transformer(self.embed(input_ids), self.embed(decoder_input_ids), tgt_mask=causal,
                             src_key_padding_mask=attention_mask == 0,
                             tgt_key_padding_mask=decoder_input_ids == PAD,
                             memory_key_padding_mask=attention_mask == 0)
        logits = self.lm_head(h * self.d ** -0.5)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        return Seq2SeqLMOutput(loss, logits)


class LitSeq2Seq(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=30, weight_decay=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyT5()

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        valid = batch["labels"] != -100
        exact = ((out.logits.argmax(-1) == batch["labels"]) | ~valid).all(1).float().mean()
        self.log("val_loss", out.loss)
        self.log("val_exact", exact)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "shared" not in n and "pos" not in n]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2 or "shared" in n or "pos" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2621)
    g = torch.Generator().manual_seed(21)
    train, val = make_pairs(2400, g), make_pairs(400, g)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitSeq2Seq(), DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_exact={float(m['val_exact']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
