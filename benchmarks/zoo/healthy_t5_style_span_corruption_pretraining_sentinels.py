"""Healthy: T5-style span-corruption pretraining of a small encoder-decoder (`nn.Transformer`) on a synthetic corpus
(sentences from a sparse first-order Markov chain). About 15 % of each sentence's tokens, in spans of mean length 3,
are replaced in the encoder input by sentinel tokens <X0>, <X1>, ...; the target is "<X0> span0 <X1> span1 ...
</s>". The model shifts the labels right itself (decoder start = pad, -100 turned into pad), uses a causal target
mask and padding masks on both sides, and ignores -100 in the loss. HF-style dict batches, AdamW, warm-up + inverse
square root, label smoothing 0.1; sentinel positions are re-drawn every epoch. Final: val accuracy 0.53 on all
target tokens and 0.32 on the masked words themselves (40-word vocabulary, stochastic chain)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
PAD, EOS = 0, 1
N_WORDS, N_SENTINELS = 40, 8
WORD0 = 2
SENTINEL0 = WORD0 + N_WORDS
VOCAB = SENTINEL0 + N_SENTINELS


def make_corpus(n, seed):
    g = torch.Generator().manual_seed(0)
    trans = torch.softmax(torch.randn(N_WORDS, N_WORDS, generator=g) * 3.0, -1)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        w = [int(torch.randint(N_WORDS, (1,), generator=g))]
        for _ in range(int(torch.randint(16, 31, (1,), generator=g)) - 1):
            w.append(int(torch.multinomial(trans[w[-1]], 1, generator=g)))
        out.append(torch.tensor(w) + WORD0)
    return out


def span_corrupt(tokens, g, rate=0.15, mean_span=3):
    n = len(tokens)
    n_spans = max(1, round(n * rate / mean_span))
    starts = sorted(torch.randperm(n - mean_span, generator=g)[: n_spans * 3].tolist())
    chosen, last_end = [], -2
    for s in starts:
        if s > last_end + 1 and len(chosen) < n_spans:
            length = int(torch.randint(1, 2 * mean_span, (1,), generator=g))
            chosen.append((s, min(n, s + length)))
            last_end = s + length
    inputs, target, pos = [], [], 0
    for k, (s, e) in enumerate(chosen):
        inputs += tokens[pos:s].tolist() + [SENTINEL0 + k]
        target += [SENTINEL0 + k] + tokens[s:e].tolist()
        pos = e
    inputs += tokens[pos:].tolist() + [EOS]
    return torch.tensor(inputs), torch.tensor(target + [EOS])


def make_collate(seed):
    g = torch.Generator().manual_seed(seed)

    def collate(sentences):
        pairs = [span_corrupt(s, g) for s in sentences]
        ids = nn.utils.rnn.pad_sequence([a for a, _ in pairs], batch_first=True, padding_value=PAD)
        labels = nn.utils.rnn.pad_sequence([b for _, b in pairs], batch_first=True, padding_value=-100)
        return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}
    return collate


class TinyT5(L.LightningModule):
    def __init__(self, d=96, lr=2e-3, warmup=100):
        super().__init__()
        self.save_hyperparameters()
        self.shared = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(64, d)
        self.transformer = nn.Transformer(d, 4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=4 * d,
                                          dropout=0.1, batch_first=True, norm_first=True)
        self.lm_head = nn.Linear(d, VOCAB)

    def shift_right(self, labels):
        dec = labels.new_full(labels.shape, PAD)
        dec[:, 1:] = labels[:, :-1]
        return dec.masked_fill(dec == -100, PAD)

    def forward(self, input_ids, attention_mask, labels):
        dec_ids = self.shift_right(labels)
        src = self.shared(input_ids) + self.pos.weight[: input_ids.size(1)]
        tgt = self.shared(dec_ids) + self.pos.weight[: dec_ids.size(1)]
        causal = nn.Transformer.generate_square_subsequent_mask(dec_ids.size(1), device=tgt.device)
        h = self.transformer(src, tgt, tgt_mask=causal, tgt_is_causal=True,
                             src_key_padding_mask=attention_mask == 0, memory_key_padding_mask=attention_mask == 0,
                             tgt_key_padding_mask=labels == -100)
        logits = self.lm_head(h)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100, label_smoothing=0.1)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        keep = batch["labels"] != -100
        is_word = keep & (batch["labels"] < SENTINEL0) & (batch["labels"] >= WORD0)
        pred = out["logits"].argmax(-1)
        self.log("val_loss", out["loss"])
        self.log("val_token_acc", (pred[keep] == batch["labels"][keep]).float().mean(), prog_bar=True)
        self.log("val_span_word_acc", (pred[is_word] == batch["labels"][is_word]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        w = self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / w, math.sqrt(w / (s + 1))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(5150)
    train, val = make_corpus(2000, 1), make_corpus(300, 2)
    model = TinyT5()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=1.0,
                        logger=TensorBoardLogger("lightning_logs", name="t5_span_corruption"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=make_collate(1)),
                DataLoader(val, batch_size=150, collate_fn=make_collate(2)))
    print(f"SYMPTOM val_token_acc={trainer.callback_metrics['val_token_acc'].item():.3f}")
    print(f"SYMPTOM val_span_word_acc={trainer.callback_metrics['val_span_word_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
