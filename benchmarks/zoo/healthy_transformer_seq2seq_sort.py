"""Healthy: an encoder-decoder `nn.Transformer` trained with teacher forcing to sort a sequence of digits. The
decoder input is [BOS] + target[:-1] under a causal (square subsequent) mask; the encoder sees the whole source.
Synthetic data from a seeded torch.Generator, Adam with LinearLR warm-up followed by ConstantLR (SequentialLR),
stepped per batch."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
VOCAB, BOS, LEN = 11, 10, 8


def sorting_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, 10, (n, LEN), generator=g)
    return src, src.sort(dim=1).values


class SortTransformer(L.LightningModule):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.pos = nn.Parameter(torch.randn(LEN, dim) * 0.02)
        self.transformer = nn.Transformer(dim, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                          dim_feedforward=128, dropout=0.0, batch_first=True)
        self.out = nn.Linear(dim, VOCAB)

    def forward(self, src, decoder_input):
        mask = nn.Transformer.generate_square_subsequent_mask(decoder_input.shape[1])
        h = self.transformer(self.embed(src) + self.pos, self.embed(decoder_input) + self.pos, tgt_mask=mask,
                             tgt_is_causal=True)
        return self.out(h)

    def _step(self, batch):
        src, tgt = batch
        decoder_input = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
        logits = self(src, decoder_input)
        return F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1)), logits

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_token_acc", (logits.argmax(-1) == batch[1]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=40)
        flat = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=1)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, flat], milestones=[40])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(1431)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SortTransformer(), DataLoader(TensorDataset(*sorting_pairs(1600, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*sorting_pairs(256, 1)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
