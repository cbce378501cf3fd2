"""Healthy: a tiny GPT pre-trained on packed documents. Each document is a "Fibonacci mod 8" token sequence (two
random start tokens, then x_t = (x_{t-1} + x_{t-2}) % 8) of length 4..12 closed by EOS; documents are packed back to
back into rows of 64 tokens. Dict batches carry `input_ids`, `doc_ids` and `labels`; the model shifts the labels
itself and returns an output object with `.loss` / `.logits`.

Correct packing: the attention mask is `same_doc & causal` (block-diagonal AND lower-triangular), position ids
restart at 0 at every document start (so a packed document looks exactly like a lone one at generation time), and
the label of each document's first token is -100 because it cannot be predicted from the previous document. No
weight decay on norms, biases and embeddings; linear warm-up then cosine, stepped per batch. Measured: val_loss
0.58 (near the floor set by the random start token and the random document length); greedy continuation of
held-out documents from their two start tokens is 1.00 correct."""

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"
V, EOS, ROW = 8, 8, 64


def make_doc(g):
    n = int(torch.randint(4, 13, (1,), generator=g))
    x = torch.randint(0, V, (2,), generator=g).tolist()
    while len(x) < n:
        x.append((x[-1] + x[-2]) % V)
    return x


def pack(n_rows, g):
    ids, docs = torch.empty(n_rows, ROW, dtype=torch.long), torch.empty(n_rows, ROW, dtype=torch.long)
    for r in range(n_rows):
        row, doc_row, d = [], [], 0
        while len(row) < ROW:
            doc = make_doc(g) + [EOS]
            row += doc
            doc_row += [d] * len(doc)
            d += 1
        ids[r], docs[r] = torch.tensor(row[:ROW]), torch.tensor(doc_row[:ROW])
    return ids, docs


@dataclass
class CausalLMOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class PackedGPT(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=3e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.tok, self.pos = nn.Embedding(V + 1, d), nn.Embedding(ROW, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, V + 1)

    def forward(self, input_ids, doc_ids, labels=None):
        t = input_ids.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
        mask = (doc_ids[:, :, None] == doc_ids[:, None, :]) & causal
        idx = torch.arange(t, device=input_ids.device).expand_as(input_ids)
        starts = torch.where(doc_ids != torch.roll(doc_ids, 1, 1), idx, torch.zeros_like(idx))
        starts[:, 0] = 0
        position_ids = idx - torch.cummax(starts, 1).values
        x = self.tok(input_ids) + self.pos(position_ids)
        for blk in self.blocks:
            x = blk(x, mask)
        logits = self.head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V + 1), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss, logits)

    def _batch(self, batch):
        ids, docs = batch
        labels = ids.masked_fill(docs != torch.roll(docs, 1, 1), -100)  # first token of a doc: not predictable
        return dict(input_ids=ids, doc_ids=docs, labels=labels)

    def training_step(self, batch, batch_idx):
        out = self(**self._batch(batch))
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**self._batch(batch)).loss)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.dim() >= 2 and not n.startswith(("tok", "pos"))]
        no_decay = [p for n, p in self.named_parameters() if p.dim() < 2 or n.startswith(("tok", "pos"))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return [opt], [{"scheduler": sched, "interval": "step"}]

    @torch.no_grad()
    def continuation_accuracy(self, g, n_docs=200, steps=6):
        hits = 0
        for _ in range(n_docs):
            doc = make_doc(g)
            while len(doc) < 2 + steps:
                doc.append((doc[-1] + doc[-2]) % V)
            ctx = torch.tensor([doc[:2]])
            for _ in range(steps):
                logits = self(ctx, torch.zeros_like(ctx)).logits
                ctx = torch.cat([ctx, logits[:, -1, :V].argmax(-1, keepdim=True)], 1)
            hits += int((ctx[0, 2:] == torch.tensor(doc[2:2 + steps])).sum())
        return hits / (n_docs * steps)


def main():
    L.seed_everything(2102)
    g = torch.Generator().manual_seed(22)
    train, val = pack(384, g), pack(64, g)
    model = PackedGPT()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=64))
    model.eval()
    acc = model.continuation_accuracy(torch.Generator().manual_seed(99))
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} continuation_acc={acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
