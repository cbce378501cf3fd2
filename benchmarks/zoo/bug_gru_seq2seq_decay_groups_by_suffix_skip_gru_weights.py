"""Bug: GRU encoder-decoder (teacher forcing with a BOS-shifted decoder input) that learns to spell a
word backwards through a cipher. The user copied the weight-decay parameter grouping from a Transformer recipe:
`decay` = names ending in "weight" (minus norms and embeddings), `no_decay` = names ending in "bias" plus norms and
embeddings. nn.GRU names its tensors `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, which match
neither rule, so both recurrent cores are in no optimizer: they keep their random initial weights while the
embeddings, LayerNorm and output layer train around them.
Symptom: val token acc 0.35 / val loss 2.16 vs 0.88 / 0.34 with the groups built from `p.dim() >= 2`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout10"
N_SYM, LEN = 20, 8
PAD, BOS = N_SYM, N_SYM + 1


def pairs(n, seed):
    """Source: random symbols; target: the source reversed and passed through a fixed cipher."""
    cipher = torch.randperm(N_SYM, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, N_SYM, (n, LEN), generator=g)
    tgt = cipher[src.flip(1)]
    return src, tgt


def to_dicts(src, tgt):
    decoder_input = torch.cat([torch.full((len(tgt), 1), BOS), tgt[:, :-1]], dim=1)
    return TensorDataset(src, decoder_input, tgt)


class Seq2Seq(L.LightningModule):
    def __init__(self, dim=128, lr=3e-3, weight_decay=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.src_emb = nn.Embedding(N_SYM + 2, dim)
        self.tgt_emb = nn.Embedding(N_SYM + 2, dim)
        self.encoder = nn.GRU(dim, dim, batch_first=True)
        self.decoder = nn.GRU(dim, dim, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, N_SYM)

    def forward(self, src, decoder_input):
        _, h = self.encoder(self.src_emb(src))
        dec, _ = self.decoder(self.tgt_emb(decoder_input), h)
        return self.out(self.norm(dec))

    def step(self, batch):
        src, dec_in, tgt = batch
        logits = self(src, dec_in)
        return F.cross_entropy(logits.reshape(-1, N_SYM), tgt.reshape(-1)), logits

    def training_step(self, batch, batch_idx):
        loss, _ = self.step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits = self.step(batch)
        self.log_dict({"val_loss": loss, "val_token_acc": (logits.argmax(-1) == batch[2]).float().mean()})

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters()
                 if n.endswith("weight") and "norm" not in n and "emb" not in n]
        no_decay = [p for n, p in self.named_parameters() if n.endswith("bias") or "norm" in n or "emb" in n]
        return torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(404)
    train, val = to_dicts(*pairs(6000, 1)), to_dicts(*pairs(1000, 2))
    model = Seq2Seq()
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="gru_cipher_seq2seq"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=500))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_token_acc={m['val_token_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
