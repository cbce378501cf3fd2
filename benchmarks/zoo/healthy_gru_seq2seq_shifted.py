"""Healthy: a GRU encoder-decoder that learns to sort short token sequences, with teacher forcing: the decoder is
fed the target shifted right behind a start token. Cross-entropy, Adam, gradient clipping."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
VOCAB, SEQ = 20, 12
BOS = VOCAB
SHIFT = True


def sorting_pairs(n, seed):
    src = torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(seed))
    return src, src.sort(dim=1).values


class Seq2Seq(L.LightningModule):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB + 1, dim)
        self.encoder = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * dim, dim)
        self.decoder = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, VOCAB)

    def forward(self, src, tgt):
        _, h = self.encoder(self.embed(src))
        h = torch.tanh(self.bridge(torch.cat([h[0], h[1]], dim=-1)))[None]
        if SHIFT:
            tgt = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
        out, _ = self.decoder(self.embed(tgt), h)
        return self.out(out)

    def training_step(self, batch, batch_idx):
        src, tgt = batch
        loss = F.cross_entropy(self(src, tgt).transpose(1, 2), tgt)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        src, tgt = batch
        self.log("val_loss", F.cross_entropy(self(src, tgt).transpose(1, 2), tgt))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(42)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Seq2Seq(), DataLoader(TensorDataset(*sorting_pairs(1024, 0)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*sorting_pairs(256, 1)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
