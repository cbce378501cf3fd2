"""Bug: a small decoder-only character LM built from `nn.TransformerDecoder` (because "GPT is a decoder"). The
decoder layer insists on a `memory` argument, and with no encoder the user passes the embedded input itself:
`self.decoder(tgt=h, memory=h, tgt_mask=causal)`. The self-attention is causally masked, but the cross-attention to
`memory` has no `memory_mask`, so every position attends to the whole sequence, the token it must predict included.
HF-style dict batches (`input_ids`/`attention_mask`/`labels`, labels shifted inside the model, padding ignored with
-100). The training and teacher-forced validation losses drop far below the entropy rate of the source (an order-2
Markov chain, 1.15 nats/char), while predictions from the prefix alone (the only thing a generator has) are worse
than uniform. Symptom: val loss 0.002 (below the 1.15 floor) and prefix-only next-char loss 6.56, vs 1.70 and 1.65
with `memory_mask=causal`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout15"
VOCAB = 16          # 0 = <pad>, 1..15 characters
SEQ = 40


def make_chain(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(VOCAB - 1, VOCAB - 1, VOCAB - 1, generator=g) * 3.0
    return torch.softmax(logits, -1)              # P(c_t | c_{t-2}, c_{t-1}) over chars 1..15


def sample_docs(table, n, seed):
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        length = int(torch.randint(SEQ // 2, SEQ + 1, (1,), generator=g))
        seq = torch.randint(0, VOCAB - 1, (2,), generator=g).tolist()
        while len(seq) < length:
            seq.append(int(torch.multinomial(table[seq[-2], seq[-1]], 1, generator=g)))
        docs.append(torch.tensor(seq) + 1)
    return docs


def entropy_rate(table):
    h = -(table * table.clamp_min(1e-12).log()).sum(-1)
    return float(h.mean())


class CharDocs(Dataset):
    def __init__(self, docs):
        self.docs = docs

    def __len__(self):
        return len(self.docs)

    def __getitem__(self, i):
        return self.docs[i]


def collate(docs):
    n = max(len(d) for d in docs)
    ids = torch.zeros(len(docs), n, dtype=torch.long)
    mask = torch.zeros(len(docs), n, dtype=torch.long)
    for i, d in enumerate(docs):
        ids[i, :len(d)] = d
        mask[i, :len(d)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class CharGPT(L.LightningModule):
    def __init__(self, d_model=96, n_layers=2, n_heads=4, lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d_model, padding_idx=0)
        self.pos = nn.Embedding(SEQ, d_model)
        layer = nn.TransformerDecoderLayer(d_model, n_heads, 4 * d_model, dropout=0.1, batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, n_layers)
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, VOCAB)

    def forward(self, input_ids, attention_mask=None, labels=None):
        T = input_ids.size(1)
        h = self.tok(input_ids) + self.pos(torch.arange(T, device=input_ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=input_ids.device)
        pad = None if attention_mask is None else attention_mask == 0
        h = self.decoder(tgt=h, memory=h, tgt_mask=causal, tgt_is_causal=True,
                         tgt_key_padding_mask=pad, memory_key_padding_mask=pad)
        logits = self.lm_head(self.norm(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch)["loss"], prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warm = 50
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def prefix_only_loss(model, docs, cuts=(8, 16, 24)):
    """Next-char loss when the model sees only the prefix, as during generation."""
    model.eval()
    losses = []
    for t in cuts:
        batch = [d for d in docs if len(d) > t + 1]
        ids = torch.stack([d[:t + 1] for d in batch])
        logits = model(ids)["logits"][:, -1]
        target = torch.stack([d[t + 1] for d in batch])
        losses.append(F.cross_entropy(logits, target).item())
    return sum(losses) / len(losses)


if __name__ == "__main__":
    L.seed_everything(1515)
    table = make_chain(7)
    train_docs = sample_docs(table, 1000, seed=1)
    val_docs = sample_docs(table, 300, seed=2)
    train = DataLoader(CharDocs(train_docs), batch_size=24, shuffle=True, collate_fn=collate)
    val = DataLoader(CharDocs(val_docs), batch_size=100, collate_fn=collate)
    model = CharGPT()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=1.0,
                        logger=TensorBoardLogger("lightning_logs", name="char_gpt_decoder"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, val)
    print(f"SYMPTOM entropy_rate={entropy_rate(table):.3f}")
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"SYMPTOM prefix_only_loss={prefix_only_loss(model, val_docs):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
