"""Healthy: T5-style span-corruption pre-training of a tiny Transformer encoder-decoder on a synthetic first-order
Markov language (vocab 24, 16-token sequences). Two non-overlapping 2-token spans are cut out of each sequence; the
encoder input keeps the rest with each span replaced by its own sentinel (`<X0>`, `<X1>`), and the labels are
`<X0> span0 <X1> span1 </s>`, so the target tokens are exactly the ones removed from the input, never copies of
visible ones. The decoder input is the labels shifted right behind a start token (inside the model, as in HF's
`_shift_right`), with a boolean causal mask on decoder self-attention; the encoder is bidirectional, which is
correct because the whole corrupted input is given. Batches are HF-style dicts and the output object has
`.logits`. Validation: loss 0.68 on the labels against 1.60 for the
per-position unigram prediction of the labels (computed on the training labels)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout34"
WORDS, SEQ, SPAN = 24, 16, 2
PAD, START, EOS, X0, X1 = 24, 25, 26, 27, 28
VOCAB = 29


def markov_corpus(n, g):
    table = torch.softmax(torch.randn(WORDS, WORDS, generator=g) * 3.0, -1)
    seqs = torch.zeros(n, SEQ, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, WORDS, (n,), generator=g)
    for t in range(1, SEQ):
        seqs[:, t] = torch.multinomial(table[seqs[:, t - 1]], 1, generator=g).squeeze(1)
    return seqs


class SpanCorruption(Dataset):
    def __init__(self, seqs, seed):
        g = torch.Generator().manual_seed(seed)
        self.seqs = seqs
        self.first = torch.randint(0, SEQ // 2 - SPAN, (len(seqs),), generator=g)
        self.second = torch.randint(SEQ // 2, SEQ - SPAN, (len(seqs),), generator=g)

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        s, a, b = self.seqs[i], self.first[i].item(), self.second[i].item()
        input_ids = torch.cat([s[:a], torch.tensor([X0]), s[a + SPAN:b], torch.tensor([X1]), s[b + SPAN:]])
        labels = torch.cat([torch.tensor([X0]), s[a:a + SPAN], torch.tensor([X1]), s[b:b + SPAN], torch.tensor([EOS])])
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


@dataclass
class Seq2SeqOutput:
    logits: torch.Tensor
    loss: torch.Tensor


class TinyT5(L.LightningModule):
    def __init__(self, d=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        self.transformer = nn.Transformer(d, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                                          dim_feedforward=128, dropout=0.0, batch_first=True)
        self.lm_head = nn.Linear(d, VOCAB)

    def shift_right(self, labels):
        return torch.cat([torch.full_like(labels[:, :1], START), labels[:, :-1]], 1)

    def forward(self, input_ids, attention_mask, labels):
        dec_ids = self.shift_right(labels)
        src = self.embed(input_ids) + self.pos(torch.arange(input_ids.size(1)))
        tgt = self.embed(dec_ids) + self.pos(torch.arange(dec_ids.size(1)))
        causal = torch.triu(torch.ones(dec_ids.size(1), dec_ids.size(1), dtype=torch.bool), 1)
        h = self.transformer(src, tgt, tgt_mask=causal, src_key_padding_mask=attention_mask == 0)
        logits = self.lm_head(h)
        return Seq2SeqOutput(logits, F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=PAD))

    def training_step(self, batch, batch_idx):
        loss = self(**batch).loss
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 50))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


def positional_unigram_loss(train, val):
    train_labels = torch.stack([train[i]["labels"] for i in range(len(train))])
    val_labels = torch.stack([val[i]["labels"] for i in range(len(val))])
    probs = F.one_hot(train_labels, VOCAB).float().mean(0) + 1e-4
    return -probs.log().gather(1, val_labels.T).mean().item()


def main():
    L.seed_everything(3409)
    seqs = markov_corpus(1500, torch.Generator().manual_seed(3409))
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    train, val = SpanCorruption(seqs[:1250], seed=1), SpanCorruption(seqs[1250:], seed=2)
    trainer.fit(TinyT5(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=250))
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.3f} "
          f"positional_unigram_loss={positional_unigram_loss(train, val):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
