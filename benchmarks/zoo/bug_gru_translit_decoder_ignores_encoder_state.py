"""Bug: a GRU encoder-decoder "transliteration" model (target = source reversed and mapped through a substitution
table), teacher forcing with [BOS] + target[:-1]. The decoder call forgets its initial state argument,
`self.decoder(emb)` instead of `self.decoder(emb, h)`: the encoder's output is computed and thrown away, so the
encoder and the source embedding never get a gradient and the decoder models the target language alone.
Measured: val token acc 0.102 (val loss 2.220, ln 9 = 2.197) vs 0.935 (0.197) with the state passed
(healthy_gru_translit_seq2seq_encoder_state)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient", "loss-trend"}
SPLIT = "heldout3"
SYMBOLS, LENGTH = 9, 7
BOS = SYMBOLS


def pairs(n, seed):
    table = torch.randperm(SYMBOLS, generator=torch.Generator().manual_seed(5))
    src = torch.randint(0, SYMBOLS, (n, LENGTH), generator=torch.Generator().manual_seed(seed))
    return TensorDataset(src, table[src.flip(1)])


class Seq2Seq(L.LightningModule):
    def __init__(self, dim=32, hidden=96, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.src_embed = nn.Embedding(SYMBOLS, dim)
        self.tgt_embed = nn.Embedding(SYMBOLS + 1, dim)
        self.encoder = nn.GRU(dim, hidden, batch_first=True)
        self.decoder = nn.GRU(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, SYMBOLS)

    def forward(self, src, tgt_in):
        _, h = self.encoder(self.src_embed(src))
        dec, _ = self.decoder(self.tgt_embed(tgt_in))  # BUG: the encoder state h is never passed (h0 = zeros)
        return self.out(dec)

    def step(self, batch):
        src, tgt = batch
        tgt_in = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
        logits = self(src, tgt_in)
        return F.cross_entropy(logits.reshape(-1, SYMBOLS), tgt.reshape(-1)), (logits.argmax(-1) == tgt).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self.step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self.step(batch)
        self.log_dict({"val_loss": loss, "val_token_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=50)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2718)
    train = DataLoader(pairs(2560, 0), batch_size=64, shuffle=True)
    val = DataLoader(pairs(500, 1), batch_size=500)
    trainer = L.Trainer(max_epochs=9, accelerator="cpu", devices=1, enable_progress_bar=False, gradient_clip_val=1.0,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Seq2Seq(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
