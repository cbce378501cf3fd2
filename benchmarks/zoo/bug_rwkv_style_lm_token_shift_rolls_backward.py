"""Bug: a small RWKV/GPT hybrid causal LM written in plain torch (token-shift mixing before each block, causal
self-attention, HuggingFace-style dict batches with the loss computed inside the model from `labels`). RWKV's
"token shift" mixes every position with the *previous* position; the user wrote it as
`torch.roll(x, shifts=-1, dims=1)` (and zeroed the last position, thinking of it as the padding slot), which is the
*next* position. Every block therefore sees token t+1 at position t, the next-token loss collapses and looks
superb, but the model cannot generate: fed a prefix only, it has no future to copy.
Symptom: teacher-forced val loss 0.002 (far below the source's entropy, about 0.56) but free-running next-token
accuracy 0.06 on prefixes; with `shifts=1` (first position zeroed) val loss 0.82 and prefix accuracy 0.73."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout10"
VOCAB, SEQ = 16, 40


def markov_corpus(n, seed):
    """Sequences from a fixed sparse second-order chain: each (a, b) pair has two likely successors."""
    g = torch.Generator().manual_seed(1234)
    first = torch.randint(0, VOCAB, (VOCAB, VOCAB), generator=g)
    second = torch.randint(0, VOCAB, (VOCAB, VOCAB), generator=g)
    g = torch.Generator().manual_seed(seed)
    seqs = torch.empty(n, SEQ, dtype=torch.long)
    seqs[:, :2] = torch.randint(0, VOCAB, (n, 2), generator=g)
    for t in range(2, SEQ):
        a, b = seqs[:, t - 2], seqs[:, t - 1]
        pick = torch.rand(n, generator=g) < 0.75
        seqs[:, t] = torch.where(pick, first[a, b], second[a, b])
    return seqs


class LMData(Dataset):
    def __init__(self, seqs):
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        return {"input_ids": self.seqs[i], "labels": self.seqs[i].clone()}


class TokenShift(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mix = nn.Parameter(torch.full((d,), 0.5))

    def forward(self, x):
        shifted = torch.roll(x, shifts=-1, dims=1)  # BUG: the previous token is shifts=1
        shifted[:, -1] = 0.0
        return self.mix * x + (1 - self.mix) * shifted


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.shift = TokenShift(d)
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, causal):
        h = self.ln1(self.shift(x))
        a, _ = self.attn(h, h, h, attn_mask=causal, need_weights=False)
        x = x + a
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, input_ids, labels=None):
        T = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(T, device=input_ids.device))
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        for blk in self.blocks:
            x = blk(x, causal)
        logits = self.head(self.ln_f(x))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        return out


class LitLM(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyLM()

    def forward(self, input_ids, labels=None):
        return self.model(input_ids, labels)

    def training_step(self, batch, batch_idx):
        loss = self(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch)["loss"], prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


@torch.no_grad()
def prefix_accuracy(model, seqs):
    """Free-running check: predict token t+1 from tokens 0..t only, as generation does."""
    model.eval()
    hits = total = 0
    for t in range(8, SEQ - 1, 6):
        logits = model(seqs[:, : t + 1])["logits"][:, -1]
        hits += (logits.argmax(-1) == seqs[:, t + 1]).sum().item()
        total += len(seqs)
    return hits / total


if __name__ == "__main__":
    L.seed_everything(31)
    train, val = markov_corpus(3000, 1), markov_corpus(500, 2)
    lit = LitLM()
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="rwkv_token_shift"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(lit, DataLoader(LMData(train), batch_size=64, shuffle=True), DataLoader(LMData(val), batch_size=250))
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"SYMPTOM prefix_next_token_acc={prefix_accuracy(lit.model, val):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
