"""Healthy: a tiny rotary-position GPT trained on *packed* rows - several short "reverse this" documents
(`x1 .. xn SEP xn .. x1 EOS`) concatenated into 64-token rows and padded at the end. Attention uses a
block-diagonal causal mask built from per-token document ids, rotary positions restart at every document, and the
labels are -100 on the prompt half, on padding and across document boundaries, so no document attends to or is
scored on its neighbours. AdamW with decoupled no-decay groups, linear warm-up + cosine decay (LambdaLR per step),
gradient clipping, bf16-mixed autocast on CPU. Final val answer-token accuracy 1.00 (val loss 0.009)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"

N_SYM = 16
PAD, SEP, EOS = N_SYM, N_SYM + 1, N_SYM + 2
VOCAB = N_SYM + 3
ROW = 64


def pack_documents(n_rows, g):
    """Returns input_ids, labels, doc_ids, pos_ids, each (n_rows, ROW)."""
    ids = torch.full((n_rows, ROW), PAD)
    labels = torch.full((n_rows, ROW), -100)
    doc = torch.full((n_rows, ROW), -1)
    pos = torch.zeros(n_rows, ROW, dtype=torch.long)
    for r in range(n_rows):
        cur, d = 0, 0
        while True:
            n = int(torch.randint(3, 9, (1,), generator=g))
            if cur + 2 * n + 2 > ROW:
                break
            x = torch.randint(0, N_SYM, (n,), generator=g)
            seg = torch.cat([x, torch.tensor([SEP]), x.flip(0), torch.tensor([EOS])])
            L_ = len(seg)
            ids[r, cur:cur + L_] = seg
            doc[r, cur:cur + L_] = d
            pos[r, cur:cur + L_] = torch.arange(L_)
            # position t predicts token t+1: score the reversed half and EOS, i.e. targets after SEP
            lab = torch.full((L_,), -100)
            lab[n:L_ - 1] = seg[n + 1:]
            labels[r, cur:cur + L_] = lab
            cur, d = cur + L_, d + 1
        pos[r, cur:] = torch.arange(ROW - cur)
    return ids, labels, doc, pos


class PackedRows(Dataset):
    def __init__(self, n_rows, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids, self.labels, self.doc, self.pos = pack_documents(n_rows, g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i], "doc_ids": self.doc[i],
                "position_ids": self.pos[i]}


def apply_rotary(x, position_ids, base=10000.0):
    # x (B, H, T, D); position_ids (B, T)
    d = x.shape[-1]
    inv = 1.0 / base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    ang = position_ids[:, None, :, None].float() * inv          # (B, 1, T, D/2)
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    return out.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x, mask, position_ids):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, position_ids), apply_rotary(k, position_ids)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask, position_ids):
        x = x + self.attn(self.n1(x), mask, position_ids)
        return x + self.ff(self.n2(x))


class PackedGPT(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=3e-3, warmup=60, weight_decay=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.lm_head.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, input_ids, doc_ids, position_ids, labels=None):
        t = input_ids.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
        same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
        mask = same_doc & causal                                  # (B, T, T), diagonal always allowed
        x = self.embed(input_ids)
        for blk in self.blocks:
            x = blk(x, mask, position_ids)
        logits = self.lm_head(self.norm(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        keep = batch["labels"] != -100
        acc = (out["logits"].argmax(-1)[keep] == batch["labels"][keep]).float().mean()
        self.log_dict({"val_loss": out["loss"], "val_acc": acc})

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr, betas=(0.9, 0.95))
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def schedule(step):
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(64)
    train_dl = DataLoader(PackedRows(1600, seed=1), batch_size=32, shuffle=True)
    val_dl = DataLoader(PackedRows(300, seed=2), batch_size=150)
    model = PackedGPT()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, precision="bf16-mixed",
                        gradient_clip_val=1.0, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_answer_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
