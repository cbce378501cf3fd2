"""Bug: an `nn.Transformer` encoder-decoder (pre-LN, 2+2 layers, d=64, learned positions, shared source/target
embeddings) trained with teacher forcing to translate a digit string into its "cipher": reversed and every digit
shifted by 3 mod 10. Decoder input `<bos> + y[:-1]`, labels `y + <eos>`, padding -100, causal `tgt_mask`, key
padding masks on both sides, label smoothing 0.1, AdamW, gradient clipping.

The schedule is a `SequentialLR` of a 30-step `LinearLR` warm-up followed by `CosineAnnealingLR(opt,
T_max=self.trainer.max_epochs)`, and the scheduler is returned with `"interval": "step"` (the warm-up is in steps,
so the author switched the interval, but the cosine was sized in epochs). With T_max = 6 the cosine completes a half
period every 6 optimiser steps: after the warm-up the learning rate falls to ~0 and climbs back to its peak over
and over, about 35 times in the 240-step run. Training still converges, just more slowly. Symptom: val loss 0.805
and greedy exact-match 0.463; with `T_max=estimated_stepping_batches - 30`, val loss 0.619 and exact-match 0.927."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout24"
PAD, BOS, EOS = 0, 1, 2  # digits are 3..12
VOCAB, MAX_LEN = 13, 16


def make_pairs(n, g):
    pairs = []
    for _ in range(n):
        x = torch.randint(0, 10, (int(torch.randint(3, 11, (1,), generator=g)),), generator=g).tolist()
        pairs.append(([d + 3 for d in x], [(d + 3) % 10 + 3 for d in reversed(x)]))
    return pairs


def collate(pairs):
    b, s, t = len(pairs), max(len(p[0]) for p in pairs), max(len(p[1]) for p in pairs) + 1
    src, dec_in, labels = torch.full((b, s), PAD), torch.full((b, t), PAD), torch.full((b, t), -100)
    for i, (x, y) in enumerate(pairs):
        src[i, :len(x)] = torch.tensor(x)
        dec_in[i, :len(y) + 1] = torch.tensor([BOS] + y)
        labels[i, :len(y) + 1] = torch.tensor(y + [EOS])
    return src, dec_in, labels


class CipherTransformer(L.LightningModule):
    def __init__(self, d=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb, self.pos = nn.Embedding(VOCAB, d, padding_idx=PAD), nn.Embedding(MAX_LEN, d)
        self.transformer = nn.Transformer(d, 4, 2, 2, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.out = nn.Linear(d, VOCAB)

    def embed(self, ids):
        return self.emb(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))

    def forward(self, src, dec_in):
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(dec_in.shape[1], device=src.device)
        h = self.transformer(self.embed(src), self.embed(dec_in), tgt_mask=tgt_mask, tgt_is_causal=True,
                             src_key_padding_mask=src == PAD, tgt_key_padding_mask=dec_in == PAD,
                             memory_key_padding_mask=src == PAD)
        return self.out(h)

    def _loss(self, batch):
        src, dec_in, labels = batch
        return F.cross_entropy(self(src, dec_in).flatten(0, 1), labels.flatten(), ignore_index=-100,
                               label_smoothing=0.1)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    @torch.no_grad()
    def greedy(self, src, steps):
        dec = torch.full((src.shape[0], 1), BOS)
        for _ in range(steps):
            dec = torch.cat([dec, self(src, dec)[:, -1:].argmax(-1)], 1)
        return dec[:, 1:]

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=30)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[30])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2407)
    g = torch.Generator().manual_seed(13)
    train, val = make_pairs(2500, g), make_pairs(300, g)
    model = CipherTransformer()
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
