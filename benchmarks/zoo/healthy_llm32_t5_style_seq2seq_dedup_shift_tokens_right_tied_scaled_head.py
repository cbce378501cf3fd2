"""Healthy: a T5-style encoder-decoder (`nn.Transformer`, pre-LN) fine-tuned on a templated text-normalisation task:
collapse runs of repeated symbols (`a a b c c c a` -> `a b c a EOS`), sources of 6..14 symbols over 6 letters.
HF seq2seq conventions throughout: the collate right-pads `input_ids` with an `attention_mask`, `labels` are the target
plus EOS padded with -100, and the model builds `decoder_input_ids` itself with `shift_tokens_right` (prepend the
decoder start token, which is PAD as in T5, drop the last label, replace -100 by PAD). Input embedding, decoder
embedding and LM head share one matrix; as in T5 with tied embeddings the decoder output is multiplied by
d_model ** -0.5 before the tied head. Label smoothing 0.1, AdamW, linear warm-up then inverse-sqrt decay.

Why it is correct: the decoder at step t sees the start token and labels < t only (shift by exactly one plus a causal
`tgt_mask`), the encoder and cross-attention ignore source padding via `src_key_padding_mask` /
`memory_key_padding_mask`, padded label positions are -100 so they carry no loss, and sources are deduplicated and
disjoint between splits. Measured: val loss 0.71 (label-smoothing floor 0.47, ln 8 = 2.08 at init), token accuracy
0.89 after 6 epochs."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout32"
PAD, EOS, A = 0, 1, 2
VOCAB, MAX_SRC = 8, 14


def make_sources(n, g):
    seen = set()
    while len(seen) < n:
        k = int(torch.randint(6, MAX_SRC + 1, (1,), generator=g))
        seen.add(tuple(torch.randint(A, VOCAB, (k,), generator=g).tolist()))
    return sorted(seen)


def example(src):
    tgt = [s for i, s in enumerate(src) if i == 0 or s != src[i - 1]]
    return {"input_ids": list(src), "labels": tgt + [EOS]}


def collate(rows):
    ts, tt = max(len(r["input_ids"]) for r in rows), max(len(r["labels"]) for r in rows)
    ids, att = torch.full((len(rows), ts), PAD), torch.zeros(len(rows), ts, dtype=torch.long)
    labels = torch.full((len(rows), tt), -100)
    for i, r in enumerate(rows):
        ids[i, :len(r["input_ids"])], att[i, :len(r["input_ids"])] = torch.tensor(r["input_ids"]), 1
        labels[i, :len(r["labels"])] = torch.tensor(r["labels"])
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


def shift_tokens_right(labels, start=PAD):
    dec = torch.full_like(labels, start)
    dec[:, 1:] = labels[:, :-1]
    return dec.masked_fill(dec == -100, PAD)


class Output:
    def __init__(self, logits, loss):
        self.logits, self.loss = logits, loss


class TinyT5(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=3e-3, smoothing=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.shared = nn.Embedding(VOCAB, d)
        self.src_pos, self.tgt_pos = nn.Embedding(MAX_SRC + 1, d), nn.Embedding(MAX_SRC + 1, d)
        self.transformer = nn.Transformer(d, heads, layers, layers, 4 * d, dropout=0.0, batch_first=True,
                                          norm_first=True)

    def forward(self, input_ids, attention_mask, labels):
        dec = shift_tokens_right(labels)
        ts, tt = input_ids.shape[1], dec.shape[1]
        src = self.shared(input_ids) + self.src_pos(torch.arange(ts))
        tgt = self.shared(dec) + self.tgt_pos(torch.arange(tt))
        pad = attention_mask == 0
        h = self.transformer(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(tt),
                             src_key_padding_mask=pad, memory_key_padding_mask=pad, tgt_is_causal=True)
        logits = (h * self.hparams.d ** -0.5) @ self.shared.weight.T
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                               label_smoothing=self.hparams.smoothing)
        return Output(logits, loss)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        keep = batch["labels"] != -100
        acc = (out.logits.argmax(-1) == batch["labels"])[keep].float().mean()
        self.log_dict({"val_loss": out.loss, "val_token_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        warm = 40
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, (warm / (s + 1)) ** 0.5))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3209)
    g = torch.Generator().manual_seed(329)
    srcs = make_sources(2300, g)
    perm = torch.randperm(len(srcs), generator=g).tolist()
    train, val = [example(srcs[i]) for i in perm[:2000]], [example(srcs[i]) for i in perm[2000:]]
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TinyT5(), DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=150, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
