"""Healthy: a GRU encoder-decoder with Luong (dot-product) attention that spells numbers: digit strings such as
"3 0 5" become word sequences "three hundred five". Teacher forcing the HuggingFace way: `labels` end with [EOS] and
are padded with -100; `decoder_input_ids` are the labels shifted right behind [BOS] with -100 replaced by [PAD];
the loss is computed inside the model and attention masks the encoder padding. Label smoothing 0.1, gradient
clipping at 1.0, Adam with ExponentialLR per epoch. Final: val token accuracy 1.00, greedy exact match 1.00 (0.996)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
WORDS = ["[PAD]", "[BOS]", "[EOS]"] + ONES + TEENS[1:] + TENS[2:] + ["ten", "hundred", "thousand"]
WORDS = list(dict.fromkeys(WORDS))
W = {w: i for i, w in enumerate(WORDS)}
PAD, BOS, EOS = 0, 1, 2
SRC_PAD = 10


def below_thousand(n):
    out = []
    if n >= 100:
        out += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        out.append(TENS[n // 10])
        if n % 10:
            out.append(ONES[n % 10])
    elif n >= 10:
        out.append(TEENS[n - 10])
    elif n > 0 or not out:
        out.append(ONES[n])
    return out


def spell(n):
    if n >= 1000:
        rest = below_thousand(n % 1000) if n % 1000 else []
        return below_thousand(n // 1000) + ["thousand"] + rest
    return below_thousand(n)


def make_numbers(n, seed):
    g = torch.Generator().manual_seed(seed)
    nums = torch.randint(0, 100000, (n,), generator=g)
    digits_len = torch.randint(1, 6, (n,), generator=g)
    return [int(x) % 10 ** int(k) for x, k in zip(nums, digits_len)]


class Numbers(Dataset):
    def __init__(self, nums):
        self.nums = nums

    def __len__(self):
        return len(self.nums)

    def __getitem__(self, i):
        n = self.nums[i]
        return {"input_ids": torch.tensor([int(c) for c in str(n)]),
                "labels": torch.tensor([W[w] for w in spell(n)] + [EOS])}


def collate(items):
    src = nn.utils.rnn.pad_sequence([it["input_ids"] for it in items], batch_first=True, padding_value=SRC_PAD)
    labels = nn.utils.rnn.pad_sequence([it["labels"] for it in items], batch_first=True, padding_value=-100)
    dec_in = torch.cat([torch.full((len(items), 1), BOS), labels[:, :-1]], 1).masked_fill(
        torch.cat([torch.zeros(len(items), 1, dtype=torch.bool), labels[:, :-1] == -100], 1), PAD)
    return {"input_ids": src, "attention_mask": (src != SRC_PAD).long(), "decoder_input_ids": dec_in,
            "labels": labels}


class Speller(nn.Module):
    def __init__(self, d=96):
        super().__init__()
        self.src_emb = nn.Embedding(SRC_PAD + 1, d, padding_idx=SRC_PAD)
        self.tgt_emb = nn.Embedding(len(WORDS), d, padding_idx=PAD)
        self.encoder = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * d, d)
        self.enc_proj = nn.Linear(2 * d, d)
        self.decoder = nn.GRU(d, d, batch_first=True)
        self.combine = nn.Linear(2 * d, d)
        self.out = nn.Linear(d, len(WORDS))

    def encode(self, input_ids, attention_mask):
        enc, h = self.encoder(self.src_emb(input_ids))
        h0 = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1))).unsqueeze(0)
        return self.enc_proj(enc), h0

    def decode(self, dec_ids, mem, attention_mask, h):
        dec, h = self.decoder(self.tgt_emb(dec_ids), h)
        scores = (dec @ mem.transpose(1, 2)).masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
        ctx = scores.softmax(-1) @ mem
        return self.out(torch.tanh(self.combine(torch.cat([dec, ctx], -1)))), h

    def forward(self, input_ids, attention_mask, decoder_input_ids, labels=None):
        mem, h = self.encode(input_ids, attention_mask)
        logits, _ = self.decode(decoder_input_ids, mem, attention_mask, h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, label_smoothing=0.1)
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, max_len=12):
        mem, h = self.encode(input_ids, attention_mask)
        tok = torch.full((len(input_ids), 1), BOS)
        out = []
        for _ in range(max_len):
            logits, h = self.decode(tok, mem, attention_mask, h)
            tok = logits.argmax(-1)
            out.append(tok)
        return torch.cat(out, 1)


class LitSpeller(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = Speller()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        keep = batch["labels"] != -100
        self.log("val_loss", out["loss"])
        self.log("val_token_acc", (out["logits"].argmax(-1)[keep] == batch["labels"][keep]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)]


def exact_match(model, loader):
    model.eval()
    hits, n = 0, 0
    for b in loader:
        gen = model.generate(b["input_ids"], b["attention_mask"])
        for g, lab in zip(gen, b["labels"]):
            lab = lab[lab != -100]
            hits += int(torch.equal(g[: len(lab)], lab))
            n += 1
    return hits / n


def main():
    L.seed_everything(163)
    train = DataLoader(Numbers(make_numbers(5000, 1)), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(Numbers(make_numbers(500, 2)), batch_size=250, collate_fn=collate)
    lit = LitSpeller()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        gradient_clip_val=1.0, logger=TensorBoardLogger("lightning_logs", name="number_speller"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(lit, train, val)
    print(f"SYMPTOM val token acc {trainer.callback_metrics['val_token_acc'].item():.3f} "
          f"greedy exact match {exact_match(lit.model, val):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
