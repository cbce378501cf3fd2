"""Healthy: a GRU encoder-decoder with dot-product (Luong) attention that sorts a string of 4-9 digits, trained with
teacher forcing. Batches are padded with a custom collate; the decoder input is `<bos>` followed by the target
without its last token, the labels are the target followed by `<eos>`, and padded label positions are -100.
Cross-entropy with label smoothing 0.1 and `ignore_index=-100`, Adam with OneCycle per step, gradient clipping 1.0.

Why it is correct: the source is packed (`pack_padded_sequence`), so the backward encoder direction starts at each
sequence's own last digit and a sample's encoding does not depend on how much padding its batch needs; the decoder
never sees the token it has to predict at the same step (inputs are shifted right by one relative to the labels),
the attention masks padded source positions with -inf before the softmax, padding is excluded from the loss, and the
bidirectional encoder is fine because the whole source is known before decoding. Label smoothing keeps the training
loss above ~0.5 even for a perfect model, which is expected, not a plateau.
Measured: val loss from ~ln 13 = 2.56 down to 0.735 (smoothing floor ~0.5), greedy exact-match on val 0.60."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"
PAD, BOS, EOS = 0, 1, 2  # digits are tokens 3..12
VOCAB = 13


def make_pairs(n, g):
    pairs = []
    for _ in range(n):
        src = (torch.randint(0, 10, (int(torch.randint(4, 10, (1,), generator=g)),), generator=g) + 3).tolist()
        pairs.append((src, sorted(src)))
    return pairs


def collate(pairs):
    b, s_len, t_len = len(pairs), max(len(p[0]) for p in pairs), max(len(p[1]) for p in pairs) + 1
    src = torch.full((b, s_len), PAD)
    dec_in = torch.full((b, t_len), PAD)
    labels = torch.full((b, t_len), -100)
    for i, (s, t) in enumerate(pairs):
        src[i, :len(s)] = torch.tensor(s)
        dec_in[i, :len(t) + 1] = torch.tensor([BOS] + t)
        labels[i, :len(t) + 1] = torch.tensor(t + [EOS])
    return src, dec_in, labels


class SortSeq2Seq(L.LightningModule):
    def __init__(self, d=96, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.src_emb, self.tgt_emb = nn.Embedding(VOCAB, d, padding_idx=PAD), nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.encoder = nn.GRU(d, d // 2, batch_first=True, bidirectional=True)
        self.decoder = nn.GRU(d, d, batch_first=True)
        self.out = nn.Linear(2 * d, VOCAB)

    def encode(self, src):
        lengths = (src != PAD).sum(1).cpu()
        packed = pack_padded_sequence(self.src_emb(src), lengths, batch_first=True, enforce_sorted=False)
        mem, h = self.encoder(packed)
        mem, _ = pad_packed_sequence(mem, batch_first=True, total_length=src.shape[1])
        return mem, torch.cat([h[0], h[1]], -1).unsqueeze(0)

    def decode(self, dec_in, mem, h, src):
        y, h = self.decoder(self.tgt_emb(dec_in), h)
        scores = (y @ mem.transpose(1, 2)).masked_fill((src == PAD)[:, None, :], float("-inf"))
        ctx = scores.softmax(-1) @ mem
        return self.out(torch.cat([y, ctx], -1)), h

    def forward(self, src, dec_in):
        mem, h = self.encode(src)
        return self.decode(dec_in, mem, h, src)[0]

    def _loss(self, batch):
        src, dec_in, labels = batch
        logits = self(src, dec_in)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=0.1)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    @torch.no_grad()
    def greedy(self, src, steps):
        mem, h = self.encode(src)
        tok, outs = torch.full((src.shape[0], 1), BOS), []
        for _ in range(steps):
            logits, h = self.decode(tok, mem, h, src)
            tok = logits.argmax(-1)
            outs.append(tok)
        return torch.cat(outs, 1)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2404)
    g = torch.Generator().manual_seed(5)
    train, val = make_pairs(3000, g), make_pairs(300, g)
    model = SortSeq2Seq()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=300, collate_fn=collate))
    model.eval()
    src, _, labels = collate(val)
    pred = model.greedy(src, labels.shape[1])
    exact = ((pred == labels) | (labels == -100)).all(1).float().mean()
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} exact_match={float(exact):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
