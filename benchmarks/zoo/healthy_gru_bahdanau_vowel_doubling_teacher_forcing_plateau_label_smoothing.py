"""Healthy: a GRU encoder-decoder with additive (Bahdanau) attention learns a length-changing rewrite - every
"vowel" symbol of the source is doubled in the target - with teacher forcing: dict batches with `input_ids`,
`attention_mask`, `decoder_input_ids` (target shifted right behind BOS) and `labels` (-100 on padding), loss
inside the model with label smoothing 0.1, gradient clipping at 1.0, Adam + ReduceLROnPlateau on `val_loss`
(patience 1, factor 0.5). Greedy decoding on a validation subset checks the model without teacher forcing.
Final val token acc 1.000 teacher-forced and greedy exact match 1.000 (val loss 0.58, the label-smoothing floor
for 17 classes), ~19 s."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"

PAD, BOS, EOS, OFF, N_SYM = 0, 1, 2, 3, 14
VOWELS = set(range(OFF, OFF + 4))
VOCAB = OFF + N_SYM


class DoublingDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.rows = []
        for _ in range(n):
            src = (torch.randint(0, N_SYM, (int(torch.randint(4, 11, (1,), generator=g)),), generator=g) + OFF).tolist()
            tgt = [t for s in src for t in ([s, s] if s in VOWELS else [s])] + [EOS]
            self.rows.append({"input_ids": torch.tensor(src), "labels": torch.tensor(tgt)})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(batch):
    ts, tt = max(len(b["input_ids"]) for b in batch), max(len(b["labels"]) for b in batch)
    ids = torch.full((len(batch), ts), PAD)
    labels = torch.full((len(batch), tt), -100)
    dec = torch.full((len(batch), tt), PAD)
    for i, b in enumerate(batch):
        n, m = len(b["input_ids"]), len(b["labels"])
        ids[i, :n] = b["input_ids"]
        labels[i, :m] = b["labels"]
        dec[i, 0] = BOS
        dec[i, 1:m] = b["labels"][:-1]
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "decoder_input_ids": dec, "labels": labels}


class AttnSeq2Seq(nn.Module):
    def __init__(self, emb=48, hidden=96):
        super().__init__()
        self.src_emb = nn.Embedding(VOCAB, emb, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(VOCAB, emb, padding_idx=PAD)
        self.encoder = nn.GRU(emb, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.cell = nn.GRUCell(emb + 2 * hidden, hidden)
        self.w_enc = nn.Linear(2 * hidden, hidden, bias=False)
        self.w_dec = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.out = nn.Linear(hidden + 2 * hidden, VOCAB)

    def encode(self, input_ids, attention_mask):
        enc, _ = self.encoder(self.src_emb(input_ids))
        m = attention_mask.unsqueeze(-1).float()
        h = torch.tanh(self.bridge((enc * m).sum(1) / m.sum(1)))
        return enc, self.w_enc(enc), h

    def step(self, tok, h, enc, enc_proj, attention_mask):
        scores = self.v(torch.tanh(enc_proj + self.w_dec(h).unsqueeze(1))).squeeze(-1)
        scores = scores.masked_fill(attention_mask == 0, float("-inf"))
        ctx = (scores.softmax(-1).unsqueeze(-1) * enc).sum(1)
        h = self.cell(torch.cat([self.tgt_emb(tok), ctx], -1), h)
        return self.out(torch.cat([h, ctx], -1)), h

    def forward(self, input_ids, attention_mask, decoder_input_ids, labels=None):
        enc, enc_proj, h = self.encode(input_ids, attention_mask)
        logits = []
        for t in range(decoder_input_ids.size(1)):
            lt, h = self.step(decoder_input_ids[:, t], h, enc, enc_proj, attention_mask)
            logits.append(lt)
        logits = torch.stack(logits, 1)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100,
                                   label_smoothing=0.1)
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def greedy(self, input_ids, attention_mask, max_len=24):
        enc, enc_proj, h = self.encode(input_ids, attention_mask)
        tok = torch.full((input_ids.size(0),), BOS)
        out = []
        for _ in range(max_len):
            lt, h = self.step(tok, h, enc, enc_proj, attention_mask)
            tok = lt.argmax(-1)
            out.append(tok)
        return torch.stack(out, 1)


class DoublingModule(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = AttnSeq2Seq()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        mask = batch["labels"] != -100
        self.log("val_loss", out["loss"])
        self.log("val_token_acc", ((out["logits"].argmax(-1) == batch["labels"]) & mask).sum() / mask.sum())
        pred = self.model.greedy(batch["input_ids"], batch["attention_mask"])
        exact = []
        for p, gold in zip(pred, batch["labels"]):
            gold = gold[gold != -100]
            exact.append(float(len(p) >= len(gold) and bool((p[: len(gold)] == gold).all())))
        self.log("val_greedy_exact", sum(exact) / len(exact))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


if __name__ == "__main__":
    L.seed_everything(1234)
    train = DataLoader(DoublingDataset(3000, seed=21), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(DoublingDataset(300, seed=22), batch_size=150, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DoublingModule(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_token_acc={float(m['val_token_acc']):.3f} val_greedy_exact={float(m['val_greedy_exact']):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
