"""Healthy: a tiny GPT (plain torch, pre-LN blocks, causal SDPA plus the padding mask, tied input/output
embeddings) trained as a causal LM on variable-length documents from a second-order Markov source, HuggingFace
style: dict batches `input_ids`/`attention_mask`/`labels` with padding labels -100, the shifted cross-entropy
computed inside the model. AdamW with the usual two groups (no weight decay on biases, LayerNorms and embeddings),
linear warm-up then cosine through a LambdaLR stepped per batch, gradient clipping at 1.0. The source's entropy
rate is printed next to the val loss: val loss 1.33 against the source's mean conditional entropy 1.17 (from
ln 14 = 2.64 at the start), in ~22 s."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"

PAD, BOS, OFF, N_SYM = 0, 1, 2, 12
VOCAB = OFF + N_SYM


def markov_table(seed=0):
    """P(next | prev2, prev1): each context has a few likely successors."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(N_SYM, N_SYM, N_SYM, generator=g) * 2.5
    return logits.softmax(-1)


class MarkovDocs(Dataset):
    def __init__(self, n, seed, table):
        g = torch.Generator().manual_seed(seed)
        self.docs = []
        for _ in range(n):
            length = int(torch.randint(12, 48, (1,), generator=g))
            seq = torch.randint(0, N_SYM, (2,), generator=g).tolist()
            while len(seq) < length:
                seq.append(int(torch.multinomial(table[seq[-2], seq[-1]], 1, generator=g)))
            self.docs.append(torch.tensor([BOS] + [s + OFF for s in seq]))

    def __len__(self):
        return len(self.docs)

    def __getitem__(self, i):
        return {"input_ids": self.docs[i]}


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), t), PAD)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = b["input_ids"]
    mask = (ids != PAD).long()
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :2] = -100   # the first two symbols have no full Markov context; not scored
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class Block(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))
        self.dropout = dropout

    def forward(self, x, attn_mask):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class TinyGPTLMHeadModel(nn.Module):
    def __init__(self, d=64, heads=4, layers=2, dropout=0.0, max_len=64):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, d)
        self.wpe = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask, labels=None):
        b, t = input_ids.shape
        causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
        attn_mask = (causal[None] & attention_mask.bool()[:, None, :]) | torch.eye(t, dtype=torch.bool)[None]
        x = self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device))
        for blk in self.blocks:
            x = blk(x, attn_mask[:, None])
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class CausalLMModule(L.LightningModule):
    def __init__(self, lr=3e-3, weight_decay=0.1, warmup_steps=60):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPTLMHeadModel()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch)["loss"])

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim < 2 or "wte" in name or "wpe" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr, betas=(0.9, 0.98))
        total, w = self.trainer.estimated_stepping_batches, self.hparams.warmup_steps

        def warmup_cosine(step):
            if step < w:
                return (step + 1) / w
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(2718)
    table = markov_table()
    entropy = float(-(table * table.log()).sum(-1).mean())  # uniform over contexts: close to the rate
    train = DataLoader(MarkovDocs(2400, seed=1, table=table), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(MarkovDocs(300, seed=2, table=table), batch_size=150, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        logger=TensorBoardLogger("lightning_logs", name="tiny_gpt_markov"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CausalLMModule(), train, val)
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} source_entropy={entropy:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
