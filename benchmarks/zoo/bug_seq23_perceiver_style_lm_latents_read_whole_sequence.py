"""Bug: a small Perceiver-flavoured causal language model, written HF-style: batches are dicts with `input_ids`,
`attention_mask` and `labels` (padding set to -100), the model shifts logits/labels itself and returns an output
object with `.loss` and `.logits`. Data: sentences sampled from a seeded random Markov chain over 20 word ids (each
word has a few likely successors), variable length, right padded.

Each block does causal self-attention over the tokens and then lets every token read a small array of 8 learned
latents, which first cross-attend to "the sequence" to summarise it (the Perceiver trick for cheap global context).
The latent cross-attention only masks padding, not the future: the latents summarise the whole sentence, including
the words the model is asked to predict, so position t sees tokens after t through the latents. The loss goes
down beautifully, but generation (which never has the future) is bad. Symptom: val loss 0.74 nats/token, below the
chain's own (state-averaged) entropy rate of about 1.38 (impossible for an honest next-token model); with the latent
read removed (the fix) val loss is 1.54."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout23"
VOCAB, PAD, BOS = 22, 0, 1


def markov_table(g):
    logits = 3.0 * torch.randn(VOCAB - 2, VOCAB - 2, generator=g)
    return logits.softmax(-1)


def sample_corpus(n, table, g):
    sents = []
    for _ in range(n):
        length = int(torch.randint(10, 25, (1,), generator=g))
        w = [int(torch.randint(0, VOCAB - 2, (1,), generator=g))]
        for _ in range(length - 1):
            w.append(int(torch.multinomial(table[w[-1]], 1, generator=g)))
        sents.append([BOS] + [x + 2 for x in w])
    return sents


def collate(sents):
    T = max(len(s) for s in sents)
    ids = torch.full((len(sents), T), PAD)
    for i, s in enumerate(sents):
        ids[i, :len(s)] = torch.tensor(s)
    mask = (ids != PAD).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


@dataclass
class LMOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class LatentBlock(nn.Module):
    def __init__(self, d, n_latents=8):
        super().__init__()
        self.self_attn = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.latents = nn.Parameter(0.02 * torch.randn(n_latents, d))
        self.summarise = nn.MultiheadAttention(d, 4, batch_first=True)
        self.read = nn.MultiheadAttention(d, 4, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, h, causal, pad):
        h = self.self_attn(h, src_mask=causal, src_key_padding_mask=pad)
        lat = self.latents.expand(h.shape[0], -1, -1)
        lat, _ = self.summarise(lat, h, h, key_padding_mask=pad)
        read, _ = self.read(self.norm(h), lat, lat)
        return h + read


class LatentLM(L.LightningModule):
    def __init__(self, d=48, n_layers=2, max_len=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(LatentBlock(d) for _ in range(n_layers))
        self.lm_head = nn.Linear(d, VOCAB)

    def forward(self, input_ids, attention_mask, labels=None):
        T = input_ids.shape[1]
        h = self.tok(input_ids) + self.pos(torch.arange(T, device=input_ids.device))
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=h.device), 1)
        pad = attention_mask == 0
        for blk in self.blocks:
            h = blk(h, causal, pad)
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return LMOutput(loss, logits)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(2302)
    g = torch.Generator().manual_seed(230)
    table = markov_table(g)
    entropy_rate = float(-(table * table.log()).sum(-1).mean())
    train, val = sample_corpus(1200, table, g), sample_corpus(200, table, g)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LatentLM(), DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=100, collate_fn=collate))
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} "
          f"chain_entropy_rate~{entropy_rate:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
