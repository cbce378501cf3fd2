"""Healthy: date normalisation as seq2seq ("the 5th of march 2021", "march 5 , 2021", "5 mar 2021" ->
"2021-03-05") with `nn.Transformer` (batch_first, source padding mask, causal target mask, teacher forcing on the
BOS-shifted target), cross-entropy with label smoothing 0.1 (so the loss floor is well above zero), Adam with the
"Noam" inverse-square-root warm-up schedule per step. Final val token acc 0.998 and greedy exact match 0.98."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
SRC_TOKENS = ["<pad>"] + MONTHS + [m[:3] for m in MONTHS if len(m) > 3] + list("0123456789") + [",", "the", "of",
                                                                                              "st", "nd", "rd", "th"]
SRC = {t: i for i, t in enumerate(dict.fromkeys(SRC_TOKENS))}
TGT_TOKENS = ["<pad>", "<bos>", "<eos>"] + list("0123456789-")
TGT = {t: i for i, t in enumerate(TGT_TOKENS)}
OUT_LEN = 11  # 10 characters + <eos>


def suffix(d):
    return "th" if 11 <= d <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")


def dates(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = int(torch.randint(1950, 2050, (1,), generator=g))
        m = int(torch.randint(1, 13, (1,), generator=g))
        d = int(torch.randint(1, 29, (1,), generator=g))
        month = MONTHS[m - 1] if float(torch.rand(1, generator=g)) < 0.6 or m == 5 else MONTHS[m - 1][:3]
        fmt = int(torch.randint(0, 4, (1,), generator=g))
        if fmt == 0:
            src = [month] + list(str(d)) + list(str(y))
        elif fmt == 1:
            src = [month] + list(str(d)) + [","] + list(str(y))
        elif fmt == 2:
            src = list(str(d)) + [month] + list(str(y))
        else:
            src = ["the"] + list(str(d)) + [suffix(d), "of", month] + list(str(y))
        tgt = list(f"{y:04d}-{m:02d}-{d:02d}") + ["<eos>"]
        out.append((torch.tensor([SRC[t] for t in src]), torch.tensor([TGT[t] for t in tgt])))
    return out


def collate(items):
    src = pad_sequence([s for s, _ in items], batch_first=True, padding_value=0)
    labels = torch.stack([t for _, t in items])
    dec_in = torch.cat([torch.full((len(items), 1), TGT["<bos>"]), labels[:, :-1]], dim=1)
    return {"src": src, "decoder_input_ids": dec_in, "labels": labels}


class DateNormalizer(L.LightningModule):
    def __init__(self, d=64, warmup=200):
        super().__init__()
        self.save_hyperparameters()
        self.src_emb, self.tgt_emb = nn.Embedding(len(SRC), d, padding_idx=0), nn.Embedding(len(TGT), d)
        self.src_pos, self.tgt_pos = nn.Embedding(16, d), nn.Embedding(OUT_LEN, d)
        self.transformer = nn.Transformer(d, 4, 2, 2, 128, dropout=0.1, batch_first=True)
        self.out = nn.Linear(d, len(TGT))
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(OUT_LEN), persistent=False)

    def forward(self, src, decoder_input_ids):
        S, T = src.shape[1], decoder_input_ids.shape[1]
        pad = src == 0
        h = self.transformer(self.src_emb(src) + self.src_pos.weight[:S],
                             self.tgt_emb(decoder_input_ids) + self.tgt_pos.weight[:T],
                             tgt_mask=self.causal[:T, :T], src_key_padding_mask=pad, memory_key_padding_mask=pad)
        return self.out(h)

    def training_step(self, batch, batch_idx):
        logits = self(batch["src"], batch["decoder_input_ids"])
        loss = F.cross_entropy(logits.reshape(-1, len(TGT)), batch["labels"].reshape(-1), label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    @torch.no_grad()
    def greedy(self, src):
        dec = torch.full((len(src), 1), TGT["<bos>"])
        for _ in range(OUT_LEN):
            nxt = self(src, dec)[:, -1].argmax(-1, keepdim=True)
            dec = torch.cat([dec, nxt], 1)
        return dec[:, 1:]

    def validation_step(self, batch, batch_idx):
        logits = self(batch["src"], batch["decoder_input_ids"])
        loss = F.cross_entropy(logits.reshape(-1, len(TGT)), batch["labels"].reshape(-1), label_smoothing=0.1)
        acc = (logits.argmax(-1) == batch["labels"]).float().mean()
        exact = (self.greedy(batch["src"]) == batch["labels"]).all(1).float().mean()
        self.log_dict({"val_loss": loss, "val_token_acc": acc, "val_exact_match": exact})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
        d, w = self.hparams.d, self.hparams.warmup
        noam = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 2.0 * d ** -0.5 * min((s + 1) ** -0.5, (s + 1) * w ** -1.5))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": noam, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(2021)
    model = DateNormalizer()
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(dates(4000, 1), batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(dates(500, 2), batch_size=250, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_token_acc={m['val_token_acc'].item():.3f} val_exact_match={m['val_exact_match'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
