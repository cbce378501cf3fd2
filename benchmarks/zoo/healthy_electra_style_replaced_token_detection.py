"""Healthy: ELECTRA-style pre-training on synthetic Markov "sentences": a small generator (1-layer Transformer MLM)
fills 15 % masked positions with tokens sampled from its own softmax (sampling is non-differentiable, so the
discriminator loss does not reach the generator - by design), and a discriminator (2-layer Transformer) labels every
token as original or replaced. The two share the token embedding table; loss = MLM loss + 50 * per-token BCE (the
paper's weighting), the BCE masked on padding. A sampled token that equals the original counts as original, so
"replaced" is a minority label (~11 %). HuggingFace-style dict batches, AdamW + linear warm-up/decay per step.
Final: generator masked accuracy 0.42; discriminator val ROC-AUC 0.60 (chance 0.5: the generator samples from a good
model of the chain, so most replacements are plausible - detection is meant to be hard)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
PAD, MASK, N_SPECIAL, N_WORDS, SEQ = 0, 1, 2, 60, 24
VOCAB = N_SPECIAL + N_WORDS


def make_corpus(n, seed):
    g = torch.Generator().manual_seed(seed)
    trans = torch.zeros(N_WORDS, N_WORDS)
    gt = torch.Generator().manual_seed(99)
    for s in range(N_WORDS):
        trans[s, torch.randperm(N_WORDS, generator=gt)[:4]] = torch.tensor([0.55, 0.25, 0.12, 0.08])
    x = torch.empty(n, SEQ, dtype=torch.long)
    x[:, 0] = torch.randint(0, N_WORDS, (n,), generator=g)
    for t in range(1, SEQ):
        x[:, t] = torch.multinomial(trans[x[:, t - 1]], 1, generator=g).squeeze(1)
    lengths = torch.randint(12, SEQ + 1, (n,), generator=g)
    x = x + N_SPECIAL
    x[torch.arange(SEQ)[None, :] >= lengths[:, None]] = PAD
    return x


class Corpus(Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "attention_mask": (self.x[i] != PAD).long()}


def encoder(d, layers, heads=4):
    layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class Electra(L.LightningModule):
    def __init__(self, d=48, lr=2e-3, disc_weight=50.0, mask_prob=0.15, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.gen_pos, self.disc_pos = nn.Embedding(SEQ, d), nn.Embedding(SEQ, d)
        self.gen, self.disc = encoder(d, 1), encoder(d, 2)
        self.gen_head = nn.Linear(d, VOCAB)
        self.disc_head = nn.Linear(d, 1)

    def forward(self, input_ids, attention_mask):
        pad = attention_mask == 0
        chosen = (torch.rand(input_ids.shape, device=input_ids.device) < self.hparams.mask_prob) & ~pad
        masked = input_ids.masked_fill(chosen, MASK)
        g = self.gen(self.tok(masked) + self.gen_pos.weight, src_key_padding_mask=pad)
        gen_logits = self.gen_head(g)
        labels = input_ids.masked_fill(~chosen, -100)
        mlm_loss = F.cross_entropy(gen_logits.transpose(1, 2), labels, ignore_index=-100)
        with torch.no_grad():
            probs = gen_logits[chosen].softmax(-1)
            probs[:, :N_SPECIAL] = 0
            sampled = torch.multinomial(probs, 1).squeeze(1)
        corrupted = input_ids.clone()
        corrupted[chosen] = sampled
        replaced = (corrupted != input_ids).float()
        h = self.disc(self.tok(corrupted) + self.disc_pos.weight, src_key_padding_mask=pad)
        disc_logits = self.disc_head(h).squeeze(-1)
        keep = ~pad
        disc_loss = F.binary_cross_entropy_with_logits(disc_logits[keep], replaced[keep])
        loss = mlm_loss + self.hparams.disc_weight * disc_loss
        return {"loss": loss, "mlm_loss": mlm_loss, "disc_loss": disc_loss, "gen_logits": gen_logits,
                "labels": labels, "disc_logits": disc_logits[keep], "replaced": replaced[keep]}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log_dict({"train_loss": out["loss"], "train_mlm": out["mlm_loss"], "train_disc": out["disc_loss"]})
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        sel = out["labels"] != -100
        gen_acc = (out["gen_logits"].argmax(-1)[sel] == out["labels"][sel]).float().mean()
        s, y = out["disc_logits"], out["replaced"]
        ranks = torch.empty_like(s)
        ranks[s.argsort()] = torch.arange(1, len(s) + 1, dtype=s.dtype)
        n_pos = y.sum()
        auc = (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(y) - n_pos))
        self.log_dict({"val_loss": out["loss"], "val_gen_acc": gen_acc, "val_disc_auc": auc,
                       "val_replaced_frac": y.mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.05, (total - s) / max(1, total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(131)
    train = DataLoader(Corpus(make_corpus(4000, 1)), batch_size=64, shuffle=True)
    val = DataLoader(Corpus(make_corpus(500, 2)), batch_size=250)
    model = Electra()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        gradient_clip_val=1.0, logger=TensorBoardLogger("lightning_logs", name="electra"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM disc val auc {m['val_disc_auc'].item():.3f} gen masked acc {m['val_gen_acc'].item():.3f} "
          f"replaced frac {m['val_replaced_frac'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
