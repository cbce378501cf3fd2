"""Healthy: small causal Transformer LM with a Switch-style mixture-of-experts FFN on a synthetic second-order
Markov language (vocab 16, 24-token sequences, HF-style dict batches `input_ids`/`labels` with labels already
shifted by the dataset, output object with `.logits` and `.loss`). Routing is token-choice top-1: every position
picks its own expert from its own hidden state, so (unlike expert-choice routing, where experts rank tokens across
the sequence) no position's output can depend on later tokens; attention uses a boolean upper-triangular mask.
The Switch load-balancing loss (E * sum_e fraction_e * mean_gate_e, weight 0.01) keeps the experts in use, and
the selected expert's output is scaled by its gate so the router gets a gradient. Validation: loss 1.68 against
2.77 for the uniform prediction (ln 16); the logits at positions <= 12 change by 0.0 when later tokens change."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout34"
VOCAB, SEQ = 16, 24


def markov_corpus(n, g):
    table = torch.softmax(torch.randn(VOCAB, VOCAB, VOCAB, generator=g) * 2.5, -1)
    seqs = torch.zeros(n, SEQ + 1, dtype=torch.long)
    seqs[:, :2] = torch.randint(0, VOCAB, (n, 2), generator=g)
    for t in range(2, SEQ + 1):
        seqs[:, t] = torch.multinomial(table[seqs[:, t - 2], seqs[:, t - 1]], 1, generator=g).squeeze(1)
    return seqs


class LMDataset(Dataset):
    def __init__(self, seqs):
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        return {"input_ids": self.seqs[i, :-1], "labels": self.seqs[i, 1:]}


@dataclass
class MoEOutput:
    logits: torch.Tensor
    loss: torch.Tensor
    aux_loss: torch.Tensor


class SwitchFFN(nn.Module):
    def __init__(self, d, n_experts=4):
        super().__init__()
        self.router = nn.Linear(d, n_experts)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
                                     for _ in range(n_experts))

    def forward(self, x):
        gates = torch.softmax(self.router(x), -1)  # (B, T, E), each token's own distribution
        choice = gates.argmax(-1)
        dispatch = F.one_hot(choice, gates.size(-1)).float()
        outs = torch.stack([e(x) for e in self.experts], -1)
        y = (outs * (gates * dispatch).unsqueeze(2)).sum(-1)
        aux = gates.size(-1) * (dispatch.mean((0, 1)) * gates.mean((0, 1))).sum()
        return y, aux


class SwitchLM(L.LightningModule):
    def __init__(self, d=64, lr=3e-3, aux_weight=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        self.ln1, self.ln2, self.ln_f = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.moe = SwitchFFN(d)
        self.head = nn.Linear(d, VOCAB)
        self.register_buffer("causal", torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1))

    def forward(self, input_ids, labels=None):
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.size(1), device=input_ids.device))
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=self.causal, need_weights=False)[0]
        y, aux = self.moe(self.ln2(x))
        logits = self.head(self.ln_f(x + y))
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1)) if labels is not None else None
        return MoEOutput(logits, loss, aux)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss, on_epoch=True, on_step=False)
        return out.loss + self.hparams.aux_weight * out.aux_loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(3406)
    g = torch.Generator().manual_seed(3406)
    seqs = markov_corpus(1800, g)
    model = SwitchLM()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(LMDataset(seqs[:1500]), batch_size=32, shuffle=True),
                DataLoader(LMDataset(seqs[1500:]), batch_size=150))
    model.eval()
    ids = seqs[1500:1600, :-1]
    changed = ids.clone()
    changed[:, 13:] = torch.randint(0, VOCAB, changed[:, 13:].shape, generator=g)
    with torch.no_grad():
        delta = (model(ids).logits[:, :13] - model(changed).logits[:, :13]).abs().max().item()
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.3f} past_logit_change={delta:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
