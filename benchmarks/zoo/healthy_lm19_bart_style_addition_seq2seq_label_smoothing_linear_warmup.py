"""Healthy: a BART-style encoder-decoder that learns two-digit addition ("48+57" -> "105"), written HuggingFace
style: a character tokenizer over "0123456789+" with <s>/</s>/<pad>, dict batches `input_ids`/`attention_mask`/
`labels` (answer digits reversed so the carry flows left to right, padding -100), the model makes
`decoder_input_ids` with `shift_tokens_right` inside `forward` and returns the loss with label smoothing 0.1.
AdamW with no weight decay on biases/LayerNorm, linear warm-up and linear decay per step, gradient clipping.
Validation reports teacher-forced token accuracy and greedy exact-match on a disjoint set of problems. Final val
token acc 0.997, greedy exact match 0.988, val loss 0.64 (label smoothing over 14 tokens puts the floor at ~0.55)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"
PAD, BOS, EOS = 0, 1, 2
CHARS = "0123456789+"


class CharTokenizer:
    def __init__(self):
        self.vocab = {c: i + 3 for i, c in enumerate(CHARS)}
        self.inv = {i: c for c, i in self.vocab.items()}

    def encode(self, s):
        return [self.vocab[c] for c in s] + [EOS]

    def decode(self, ids):
        return "".join(self.inv.get(i, "") for i in ids)


class AdditionDataset(Dataset):
    def __init__(self, pairs, tok):
        self.items = [(tok.encode(f"{x}+{y}"), tok.encode(str(x + y)[::-1])) for x, y in pairs]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    S, T = max(len(s) for s, _ in batch), max(len(t) for _, t in batch)
    input_ids, labels = torch.full((len(batch), S), PAD), torch.full((len(batch), T), -100)
    for i, (s, t) in enumerate(batch):
        input_ids[i, : len(s)], labels[i, : len(t)] = torch.tensor(s), torch.tensor(t)
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": labels}


def shift_tokens_right(labels, pad_token_id, decoder_start_token_id):
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


class TinyBart(nn.Module):
    def __init__(self, vocab=len(CHARS) + 3, d=64):
        super().__init__()
        self.shared = nn.Embedding(vocab, d, padding_idx=PAD)
        self.enc_pos, self.dec_pos = nn.Embedding(16, d), nn.Embedding(16, d)
        self.transformer = nn.Transformer(d, 4, 2, 2, 4 * d, dropout=0.1, batch_first=True)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids, attention_mask, labels=None, decoder_input_ids=None):
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, PAD, BOS)
        S, T = input_ids.shape[1], decoder_input_ids.shape[1]
        src = self.shared(input_ids) + self.enc_pos(torch.arange(S))
        tgt = self.shared(decoder_input_ids) + self.dec_pos(torch.arange(T))
        h = self.transformer(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.bool),
                             src_key_padding_mask=attention_mask == 0, memory_key_padding_mask=attention_mask == 0,
                             tgt_key_padding_mask=decoder_input_ids == PAD, tgt_is_causal=True)
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=0.1)
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, max_new_tokens=4):
        dec = torch.full((input_ids.shape[0], 1), BOS)
        for _ in range(max_new_tokens):
            nxt = self(input_ids, attention_mask, decoder_input_ids=dec)["logits"][:, -1].argmax(-1, keepdim=True)
            dec = torch.cat([dec, nxt], 1)
        return dec[:, 1:]


class LitAdder(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyBart()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        mask = batch["labels"] != -100
        self.log("val_loss", out["loss"])
        self.log("val_token_acc", (out["logits"].argmax(-1)[mask] == batch["labels"][mask]).float().mean())
        gen = self.model.generate(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"].clamp(min=0)
        T = labels.shape[1]
        gen = gen[:, :T] if gen.shape[1] >= T else F.pad(gen, (0, T - gen.shape[1]))
        exact = ((gen == labels) | ~mask).all(1).float().mean()
        self.log("val_exact_match", exact)

    def configure_optimizers(self):
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2 or "norm" in n]
        decay = [p for n, p in self.named_parameters() if not (p.ndim < 2 or "norm" in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        warmup = int(0.05 * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(1234)
    tok = CharTokenizer()
    # every a+b with a, b < 100 exactly once, split disjointly so no validation problem is seen in training
    order = torch.randperm(10000, generator=torch.Generator().manual_seed(0)).tolist()
    pairs = [(i // 100, i % 100) for i in order]
    lit = LitAdder()
    trainer = L.Trainer(max_epochs=8, gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks(),
                        accelerator="cpu", devices=1, logger=TensorBoardLogger("lightning_logs", name="lm19_adder"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(lit, DataLoader(AdditionDataset(pairs[:6000], tok), batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(AdditionDataset(pairs[6000:6500], tok), batch_size=250, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_token_acc={m['val_token_acc'].item():.3f} val_exact_match={m['val_exact_match'].item():.3f} "
          f"val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
