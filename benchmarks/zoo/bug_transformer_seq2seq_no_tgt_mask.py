"""Bug: an encoder-decoder `nn.Transformer` trained with teacher forcing (decoder input [BOS] + target[:-1],
correctly shifted) but called without `tgt_mask`: the decoder's self-attention is bidirectional, so position t
reads decoder input t+1, which is target t, the token it must predict. Toy translation (source reversed and mapped
through a fixed dictionary), Adam with OneCycleLR. Measured: train loss 1.34, teacher-forced val loss 1.52 / token acc 0.38,
greedy exact-match 0.000 at inference, vs 0.036 / 0.994 / 0.949 with the causal mask
(healthy_transformer_seq2seq_tgt_mask): the attention learns a mix of copying and translating that decodes nothing."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage", "causal-leakage"}
SPLIT = "heldout2"
WORDS, LEN = 16, 8
BOS, VOCAB = 16, 17


def translation_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randperm(WORDS, generator=torch.Generator().manual_seed(3))
    src = torch.randint(0, WORDS, (n, LEN), generator=g)
    return src, dictionary[src.flip(1)]


class Translator(L.LightningModule):
    def __init__(self, dim=64, total_steps=400):
        super().__init__()
        self.save_hyperparameters()
        self.src_embed = nn.Embedding(VOCAB, dim)
        self.tgt_embed = nn.Embedding(VOCAB, dim)
        self.pos = nn.Parameter(torch.randn(LEN, dim) * 0.02)
        self.transformer = nn.Transformer(dim, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                          dim_feedforward=128, dropout=0.0, batch_first=True)
        self.out = nn.Linear(dim, VOCAB)

    def forward(self, src, decoder_input):
        t = decoder_input.shape[1]
        # BUG: no tgt_mask: the decoder's self-attention sees the whole decoder input, future targets included
        h = self.transformer(self.src_embed(src) + self.pos, self.tgt_embed(decoder_input) + self.pos[:t])
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

    @torch.no_grad()
    def greedy(self, src):
        dec = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
        for _ in range(LEN):
            dec = torch.cat([dec, self(src, dec)[:, -1].argmax(-1, keepdim=True)], dim=1)
        return dec[:, 1:]

    def validation_step(self, batch, batch_idx):
        loss, logits = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_token_acc", (logits.argmax(-1) == batch[1]).float().mean())
        self.log("val_greedy_exact", (self.greedy(batch[0]) == batch[1]).all(1).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=self.hparams.total_steps,
                                                    pct_start=0.05)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2102)
    train = DataLoader(TensorDataset(*translation_pairs(3000, 0)), batch_size=50, shuffle=True)
    val = DataLoader(TensorDataset(*translation_pairs(256, 1)), batch_size=256)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Translator(total_steps=6 * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_token_acc']):.3f} "
          f"val_greedy_exact={float(m['val_greedy_exact']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
