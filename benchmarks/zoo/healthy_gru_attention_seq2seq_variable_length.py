"""Healthy: a GRU encoder-decoder with Luong (dot-product) attention, trained with teacher forcing to reverse
variable-length token sequences (3-10 tokens of 20). The bidirectional encoder runs on packed sequences; the
decoder reads [BOS] + target and predicts target + [EOS]; padded label positions are -100 (ignored by the loss)
and the attention never looks at source padding. Validation also decodes greedily until EOS. Adam,
ReduceLROnPlateau on val_loss, gradient clipping. Reaches val loss 0.083, token acc 0.98, greedy exact match 0.88."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"
TOKENS, PAD, BOS, EOS, VOCAB, MAX_OUT = 20, 20, 21, 22, 23, 11


def reversal_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n):
        src = torch.randint(0, TOKENS, (int(torch.randint(3, 11, (1,), generator=g)),), generator=g)
        pairs.append((src, src.flip(0)))
    return pairs


def collate(pairs):
    src = pad_sequence([s for s, _ in pairs], batch_first=True, padding_value=PAD)
    lengths = torch.tensor([len(s) for s, _ in pairs])
    dec_in = pad_sequence([torch.cat([torch.tensor([BOS]), t]) for _, t in pairs], batch_first=True, padding_value=PAD)
    labels = pad_sequence([torch.cat([t, torch.tensor([EOS])]) for _, t in pairs], batch_first=True, padding_value=-100)
    return src, lengths, dec_in, labels


class AttnSeq2Seq(L.LightningModule):
    def __init__(self, dim=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.encoder = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * dim, dim)
        self.decoder = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(2 * dim + dim, VOCAB)

    def encode(self, src, lengths):
        packed = pack_padded_sequence(self.embed(src), lengths, batch_first=True, enforce_sorted=False)
        enc, h = self.encoder(packed)
        enc, _ = pad_packed_sequence(enc, batch_first=True, total_length=src.shape[1])
        return enc, torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1))).unsqueeze(0)

    def decode(self, enc, src_mask, dec_in, h):
        dec, h = self.decoder(self.embed(dec_in), h)
        scores = dec @ self.bridge(enc).transpose(1, 2)
        scores = scores.masked_fill(~src_mask[:, None, :], float("-inf"))
        context = torch.softmax(scores, -1) @ enc
        return self.out(torch.cat([dec, context], -1)), h

    def forward(self, src, lengths, dec_in):
        enc, h = self.encode(src, lengths)
        return self.decode(enc, src != PAD, dec_in, h)[0]

    def training_step(self, batch, batch_idx):
        src, lengths, dec_in, labels = batch
        loss = F.cross_entropy(self(src, lengths, dec_in).reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    @torch.no_grad()
    def greedy(self, src, lengths):
        enc, h = self.encode(src, lengths)
        tok, out = torch.full((len(src), 1), BOS, device=src.device), []
        for _ in range(MAX_OUT):
            logits, h = self.decode(enc, src != PAD, tok, h)
            tok = logits.argmax(-1)
            out.append(tok)
        return torch.cat(out, 1)

    def validation_step(self, batch, batch_idx):
        src, lengths, dec_in, labels = batch
        logits = self(src, lengths, dec_in)
        real = labels != -100
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100))
        self.log("val_token_acc", (logits.argmax(-1)[real] == labels[real]).float().mean())
        pred = self.greedy(src, lengths)[:, : labels.shape[1]]
        self.log("val_greedy_exact", ((pred == labels) | ~real).all(1).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(2114)
    train = DataLoader(reversal_pairs(3000, 0), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(reversal_pairs(300, 1), batch_size=300, collate_fn=collate)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AttnSeq2Seq(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_token_acc']):.3f} "
          f"val_greedy_exact={float(m['val_greedy_exact']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
