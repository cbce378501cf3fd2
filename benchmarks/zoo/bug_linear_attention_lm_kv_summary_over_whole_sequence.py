"""Bug: a small "linear transformer" causal language model (Katharopoulos-style kernel attention, phi = elu + 1)
trained on synthetic token streams: each sequence is an arithmetic progression modulo the vocabulary with a
per-sequence stride, plus 10 % random noise tokens. Batches are HuggingFace-style dicts (`input_ids`, `labels`),
the model shifts the labels and computes the loss inside `forward`, returning an output with `.loss` and `.logits`.
The attention summary is written the way the encoder (non-causal) form of linear attention is written:
`kv = einsum("bthd,bthe->bhde", k, v)` sums keys and values over the whole sequence, so position t reads tokens
after t. The causal form needs a cumulative sum over time. A user porting the encoder formula to a decoder writes
exactly this; the loss looks great. Symptom: teacher-forced val loss 0.002 (far below the 10 % noise floor) but
next-token accuracy when the model only sees the prefix is 0.03, vs val loss 1.00 and prefix accuracy 0.83 with the
cumulative-sum fix."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout17"
VOCAB, SEQ = 23, 24


def make_streams(n, seed):
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    stride = torch.randint(1, 6, (n, 1), generator=g)
    ids = (start + stride * torch.arange(SEQ)) % VOCAB
    noise = torch.rand(n, SEQ, generator=g) < 0.10
    ids = torch.where(noise, torch.randint(0, VOCAB, (n, SEQ), generator=g), ids)
    return ids


class Streams(Dataset):
    def __init__(self, ids):
        self.ids = ids

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


class LinearAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, self.dh).unbind(2)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = torch.einsum("bthd,bthe->bhde", k, v)  # summary of the whole sequence
        z = k.sum(1)  # (b, h, d)
        num = torch.einsum("bthd,bhde->bthe", q, kv)
        den = torch.einsum("bthd,bhd->bth", q, z).unsqueeze(-1) + 1e-6
        return self.out((num / den).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = LinearAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Output(dict):
    __getattr__ = dict.__getitem__


class LinearTransformerLM(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB)

    def forward(self, input_ids, labels=None):
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1]))
        for blk in self.blocks:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        return Output(loss=loss, logits=logits)


class LitLM(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = LinearTransformerLM()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)


@torch.no_grad()
def prefix_accuracy(model, ids):
    """Predict token t from tokens < t only (what generation sees)."""
    model.eval()
    hits, total = 0, 0
    for t in range(4, SEQ):
        logits = model(ids[:, :t]).logits[:, -1]
        hits += (logits.argmax(-1) == ids[:, t]).sum().item()
        total += len(ids)
    return hits / total


def main():
    L.seed_everything(1717)
    train, val = make_streams(3000, 1), make_streams(500, 2)
    lit = LitLM()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="linear_attention_lm"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(lit, DataLoader(Streams(train), batch_size=64, shuffle=True),
                DataLoader(Streams(val), batch_size=128))
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"SYMPTOM prefix_next_token_acc={prefix_accuracy(lit.model, val):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
