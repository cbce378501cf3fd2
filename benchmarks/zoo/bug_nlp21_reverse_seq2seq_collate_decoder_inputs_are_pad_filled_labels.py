"""Bug: a small encoder-decoder transformer (nn.Transformer, T5-style interface) trained to reverse digit strings of
length 3..8. The collate function returns HF-style dict batches `input_ids`, `attention_mask`, `labels` (EOS-closed
target, padded with -100) and `decoder_input_ids`; the model only builds `decoder_input_ids = shift_right(labels)`
itself when the batch does not carry them, uses a proper causal `tgt_mask` and returns `.loss` / `.logits`.
AdamW, linear warm-up then linear decay, stepped per batch.

The collate, modelled on a seq2seq data collator, "prepares" the decoder inputs as
`labels.masked_fill(labels == -100, PAD)` - it replaces the ignore index by padding but never shifts right. So the
decoder input at position t *is* the label at position t: with the causal mask the decoder can still read it and
simply copies it. Teacher-forced train and validation loss collapse to ~0, nothing crashes; at generation the
decoder is fed its own previous outputs and the copying strategy fails. Symptom: greedy exact-match on validation
0.000 (teacher-forced val_loss 0.008) vs 0.998 (val_loss 0.009) when the collate leaves decoder inputs to the
model's `shift_right`."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout21"
PAD, BOS, EOS, VOCAB, MAXLEN = 10, 11, 12, 13, 10

def make_pairs(n, g):
    pairs = []
    for _ in range(n):
        length = int(torch.randint(3, 9, (1,), generator=g))
        src = torch.randint(0, 10, (length,), generator=g).tolist()
        pairs.append((src, src[::-1]))
    return pairs

def collate(batch):
    s_len = max(len(s) for s, _ in batch)
    t_len = max(len(t) for _, t in batch) + 1
    input_ids = torch.full((len(batch), s_len), PAD)
    labels = torch.full((len(batch), t_len), -100)
    for i, (s, t) in enumerate(batch):
        input_ids[i, :len(s)] = torch.tensor(s)
        labels[i, :len(t) + 1] = torch.tensor(t + [EOS])
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": labels,
            "decoder_input_ids": labels.masked_fill(labels == -100, PAD)}

@dataclass
class Seq2SeqOutput:
    loss: torch.Tensor
    logits: torch.Tensor

class TinyT5(L.LightningModule):
    def __init__(self, d=64, lr=2e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.emb, self.pos = nn.Embedding(VOCAB, d, padding_idx=PAD), nn.Embedding(MAXLEN, d)
        self.transformer = nn.Transformer(d, 4, 2, 2, 128, dropout=0.0, batch_first=True)
        self.lm_head = nn.Linear(d, VOCAB)

    @staticmethod
    def shift_right(labels):
        shifted = torch.full_like(labels, PAD)
        shifted[:, 0] = BOS
        shifted[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, PAD)
        return shifted

    def embed(self, ids):
        return self.emb(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))

    def forward(self, input_ids, attention_mask, labels=None, decoder_input_ids=None):
        if decoder_input_ids is None:
            decoder_input_ids = self.shift_right(labels)
        t = decoder_input_ids.shape[1]
        h = self.transformer(self.embed(input_ids), self.embed(decoder_input_ids),
                             tgt_mask=nn.Transformer.generate_square_subsequent_mask(t),
                             src_key_padding_mask=attention_mask == 0, memory_key_padding_mask=attention_mask == 0,
                             tgt_key_padding_mask=decoder_input_ids == PAD)
        logits = self.lm_head(h)
        loss = None if labels is None else F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
        return Seq2SeqOutput(loss, logits)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, max_new=MAXLEN - 1):
        dec = torch.full((input_ids.shape[0], 1), BOS)
        for _ in range(max_new):
            logits = self(input_ids, attention_mask, decoder_input_ids=dec).logits
            dec = torch.cat([dec, logits[:, -1].argmax(-1, keepdim=True)], 1)
        return dec[:, 1:]

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        return [opt], [{"scheduler": sched, "interval": "step"}]

def exact_match(model, pairs):
    batch = collate(pairs)
    pred = model.generate(batch["input_ids"], batch["attention_mask"])
    hits = [pred[i, :len(t) + 1].tolist() == t + [EOS] for i, (_, t) in enumerate(pairs)]
    return sum(hits) / len(hits)

def main():
    L.seed_everything(2103)
    g = torch.Generator().manual_seed(23)
    train, val = make_pairs(3000, g), make_pairs(400, g)
    model = TinyT5()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    model.eval()
    em = exact_match(model, val)
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} greedy_exact_match={em:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

if __name__ == "__main__":
    main()
