"""Bug: small causal Transformer LM with a mixture-of-experts FFN, trained on a synthetic second-order Markov
language (vocab 16, 32-token sequences, HF-style dict batches, output object with `.logits`). The MoE layer uses
expert-choice routing ("each expert picks its top-k tokens", the load-balanced router from the Expert Choice
paper) and the top-k is taken over the sequence axis of each sample. Whether token t is routed to an expert, and
hence its FFN output, depends on the router scores of every other token of the sequence, future ones included,
so the prediction at position t can read tokens after t. Attention is properly causal and the loss still falls
(val loss 1.58 against 1.52 for token-choice routing), so nothing looks wrong in training curves; the leak shows
when the tokens after position 16 are replaced: the logits at positions <= 16 move by up to 5.8 (max abs change),
against exactly 0.0 with per-token top-1 routing. At generation time the future does not exist, so the routing
the model was trained with cannot be reproduced."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout34"
VOCAB, SEQ = 16, 32


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
class LMOutput:
    logits: torch.Tensor
    loss: torch.Tensor


class ExpertChoiceMoE(nn.Module):
    def __init__(self, d, n_experts=4, capacity_factor=1.0):
        super().__init__()
        self.router = nn.Linear(d, n_experts)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
                                     for _ in range(n_experts))
        self.capacity_factor = capacity_factor

    def forward(self, x):
        gates = torch.softmax(self.router(x), -1)  # (B, T, E)
        k = int(x.size(1) * self.capacity_factor / gates.size(-1))
        top = gates.topk(k, dim=1).indices  # each expert picks its k tokens
        chosen = torch.zeros_like(gates).scatter(1, top, 1.0)
        outs = torch.stack([e(x) for e in self.experts], -1)  # (B, T, D, E)
        return (outs * (gates * chosen).unsqueeze(2)).sum(-1)


class MoELM(L.LightningModule):
    def __init__(self, d=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        self.ln1, self.ln2, self.ln_f = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.moe = ExpertChoiceMoE(d)
        self.head = nn.Linear(d, VOCAB)
        self.register_buffer("causal", torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1))

    def forward(self, input_ids, labels=None):
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.size(1), device=input_ids.device))
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=self.causal, need_weights=False)[0]
        x = x + self.moe(self.ln2(x))
        logits = self.head(self.ln_f(x))
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1)) if labels is not None else None
        return LMOutput(logits, loss)

    def training_step(self, batch, batch_idx):
        loss = self(**batch).loss
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(3401)
    g = torch.Generator().manual_seed(3401)
    seqs = markov_corpus(2400, g)
    model = MoELM()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(LMDataset(seqs[:2000]), batch_size=32, shuffle=True),
                DataLoader(LMDataset(seqs[2000:]), batch_size=200))
    model.eval()
    ids = seqs[2000:2100, :-1]
    changed = ids.clone()
    changed[:, 17:] = torch.randint(0, VOCAB, changed[:, 17:].shape, generator=g)
    with torch.no_grad():
        delta = (model(ids).logits[:, :17] - model(changed).logits[:, :17]).abs().max().item()
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.3f} past_logit_change={delta:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
