"""Healthy: a GRU encoder-decoder with dot-product attention trained with teacher forcing on a synthetic transduction
task: the target is the source digit string reversed with every digit incremented mod 10 (lengths 3-12, seeded
torch.Generator). Batches are dicts with `input_ids`, `attention_mask`, `decoder_input_ids` and `labels`.

Done right: the collate builds `decoder_input_ids = [BOS] + target` and `labels = target + [EOS]` (shifted by one,
so the decoder never reads the token it must emit), padding in labels is -100 and ignored by the loss, the encoder
attention masks padded source positions, and validation runs greedy decoding (no teacher forcing) and reports
sequence exact match next to the teacher-forced loss. Symptom measured: teacher-forced val loss 0.175 and greedy
exact match 0.75 after 8 epochs (still improving)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout23"
PAD, BOS, EOS, VOCAB = 0, 1, 2, 13


def make_pairs(n, g):
    pairs = []
    for _ in range(n):
        src = torch.randint(0, 10, (int(torch.randint(3, 13, (1,), generator=g)),), generator=g)
        tgt = ((src + 1) % 10).flip(0)
        pairs.append((src + 3, tgt + 3))
    return pairs


def collate(pairs):
    B, S, T = len(pairs), max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs) + 1
    ids, dec, labels = torch.full((B, S), PAD), torch.full((B, T), PAD), torch.full((B, T), -100)
    for i, (s, t) in enumerate(pairs):
        ids[i, :len(s)] = s
        dec[i, :len(t) + 1] = torch.cat([torch.tensor([BOS]), t])
        labels[i, :len(t) + 1] = torch.cat([t, torch.tensor([EOS])])
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "decoder_input_ids": dec, "labels": labels}


class Seq2Seq(L.LightningModule):
    def __init__(self, d=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.enc = nn.GRU(d, d, batch_first=True)
        self.dec = nn.GRU(d, d, batch_first=True)
        self.out = nn.Linear(2 * d, VOCAB)

    def encode(self, input_ids):
        mem, h = self.enc(self.emb(input_ids))
        return mem, h

    def decode(self, dec_ids, mem, h, attention_mask):
        q, h = self.dec(self.emb(dec_ids), h)
        scores = q @ mem.transpose(1, 2) / mem.shape[-1] ** 0.5
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
        ctx = scores.softmax(-1) @ mem
        return self.out(torch.cat([q, ctx], -1)), h

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        mem, h = self.encode(input_ids)
        return self.decode(decoder_input_ids, mem, h, attention_mask)[0]

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1), ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    @torch.no_grad()
    def greedy(self, input_ids, attention_mask, steps):
        mem, h = self.encode(input_ids)
        tok = torch.full((input_ids.shape[0], 1), BOS)
        outs = []
        for _ in range(steps):
            logits, h = self.decode(tok, mem, h, attention_mask)
            tok = logits.argmax(-1)
            outs.append(tok)
        return torch.cat(outs, 1)

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"])
        labels = batch["labels"]
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100))
        pred = self.greedy(batch["input_ids"], batch["attention_mask"], labels.shape[1])
        real = labels != -100
        self.log("val_exact", ((pred == labels) | ~real).all(1).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2306)
    g = torch.Generator().manual_seed(234)
    train, val = make_pairs(3000, g), make_pairs(300, g)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Seq2Seq(), DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=150, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_exact_match={float(m['val_exact']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
