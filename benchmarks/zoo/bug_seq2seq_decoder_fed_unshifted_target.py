"""Bug: a GRU seq2seq model trained with teacher forcing where the decoder is fed the target itself instead of
[BOS] + target[:-1]: at every step the decoder reads the token it must predict, so the loss collapses to ~0
while the model cannot decode anything at inference. Sequence reversal on synthetic digits, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout"
VOCAB, BOS, LEN = 11, 10, 6


def reversal_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, 10, (n, LEN), generator=g)
    return src, src.flip(1)


class Seq2Seq(L.LightningModule):
    def __init__(self, dim=128):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, dim)
        self.tgt_embed = nn.Embedding(VOCAB, dim)
        self.encoder = nn.GRU(dim, dim, batch_first=True)
        self.decoder = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, VOCAB)

    def forward(self, src, decoder_input):
        _, h = self.encoder(self.src_embed(src))
        dec, _ = self.decoder(self.tgt_embed(decoder_input), h)
        return self.out(dec)

    def _loss(self, batch):
        src, tgt = batch
        decoder_input = tgt  # BUG: teacher forcing without the shift (meant [BOS] + tgt[:, :-1])
        logits = self(src, decoder_input)
        return F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1)), logits

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits = self._loss(batch)
        self.log("val_loss", loss)
        self.log("val_token_acc", (logits.argmax(-1) == batch[1]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(1422)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Seq2Seq(), DataLoader(TensorDataset(*reversal_pairs(2000, 0)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*reversal_pairs(256, 1)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
