"""Bug: a tiny prefix language model (plain-torch decoder, HuggingFace-style dict batches with `input_ids`,
`attention_mask`, `token_type_ids`, `labels` and the shifted cross-entropy computed inside the model) learns to
reverse a digit string: `prompt SEP answer`, with the loss only on the answer tokens. A prefix LM attends
bidirectionally over the prompt and causally over the answer, so the mask is "causal OR key-is-in-prefix". The
prefix should be the prompt (`token_type_ids == 0`), but `build_attention_bias` takes the prefix from
`attention_mask` (the two tensors sit side by side in the batch dict and both are "1 for the part that is
visible"), so every non-padding token is prefix and every answer position can read the answer token it is
trained to predict. Teacher-forced losses drop to ~0, both on train and on val, and look excellent; greedy
generation, where there is no future to peek at, is poor.

Symptom (measured): teacher-forced val loss 0.0015 but greedy exact-match on val 0.00 (per-token 0.32); with the
prefix taken from `token_type_ids` val loss 0.0011 and greedy exact-match 1.00 (per-token 1.00). Runtime ~21 s."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout13"

PAD, SEP, OFFSET, N_SYM = 0, 1, 2, 10
VOCAB = OFFSET + N_SYM


class ReverseDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.rows = []
        for _ in range(n):
            k = int(torch.randint(4, 9, (1,), generator=g))
            digits = torch.randint(0, N_SYM, (k,), generator=g) + OFFSET
            self.rows.append(digits)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        prompt = self.rows[i]
        answer = prompt.flip(0)
        ids = torch.cat([prompt, torch.tensor([SEP]), answer])
        types = torch.cat([torch.zeros(len(prompt) + 1, dtype=torch.long), torch.ones(len(answer), dtype=torch.long)])
        labels = torch.where(types == 1, ids, torch.full_like(ids, -100))
        return {"input_ids": ids, "token_type_ids": types, "labels": labels}


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    out = {"input_ids": torch.full((len(batch), t), PAD), "attention_mask": torch.zeros(len(batch), t, dtype=torch.long),
           "token_type_ids": torch.zeros(len(batch), t, dtype=torch.long), "labels": torch.full((len(batch), t), -100)}
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        out["input_ids"][i, :n] = b["input_ids"]
        out["attention_mask"][i, :n] = 1
        out["token_type_ids"][i, :n] = b["token_type_ids"]
        out["labels"][i, :n] = b["labels"]
    return out


def build_attention_bias(attention_mask, token_type_ids, n_heads):
    """Prefix-LM mask: a query may see every earlier key, and every key of the prefix. True = blocked."""
    b, t = attention_mask.shape
    causal = torch.ones(t, t, dtype=torch.bool, device=attention_mask.device).tril()
    prefix = attention_mask.bool()  # the prompt part of the sequence
    allowed = causal[None] | prefix[:, None, :]
    allowed = allowed & attention_mask.bool()[:, None, :]
    allowed = allowed | torch.eye(t, dtype=torch.bool, device=attention_mask.device)[None]  # padded queries
    return (~allowed).repeat_interleave(n_heads, dim=0)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyPrefixLM(nn.Module):
    def __init__(self, d=64, heads=4, layers=2, max_len=32):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(max_len, d)
        self.type_emb = nn.Embedding(2, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask, token_type_ids, labels=None):
        t = input_ids.size(1)
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device)) + self.type_emb(token_type_ids)
        mask = build_attention_bias(attention_mask, token_type_ids, self.heads)
        for blk in self.blocks:
            x = blk(x, mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class PrefixLMModule(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=100):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyPrefixLM()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out["loss"], batch_size=batch["input_ids"].size(0))
        tok, exact = self.greedy_accuracy(batch)
        self.log("val_gen_token_acc", tok, batch_size=batch["input_ids"].size(0))
        self.log("val_gen_exact", exact, batch_size=batch["input_ids"].size(0))

    @torch.no_grad()
    def greedy_accuracy(self, batch):
        toks, exacts = [], []
        for i in range(batch["input_ids"].size(0)):
            ids, types = batch["input_ids"][i], batch["token_type_ids"][i]
            n_prompt = int(((types == 0) & batch["attention_mask"][i].bool()).sum())
            n_ans = int(((types == 1) & batch["attention_mask"][i].bool()).sum())
            seq = ids[:n_prompt].clone()
            for _ in range(n_ans):
                t = len(seq)
                tt = torch.cat([torch.zeros(n_prompt, dtype=torch.long), torch.ones(t - n_prompt, dtype=torch.long)])
                logits = self.model(seq[None], torch.ones(1, t, dtype=torch.long), tt[None])["logits"]
                seq = torch.cat([seq, logits[0, -1].argmax()[None]])
            pred, gold = seq[n_prompt:], ids[n_prompt:n_prompt + n_ans]
            toks.append((pred == gold).float().mean())
            exacts.append(float(bool((pred == gold).all())))
        return torch.stack(toks).mean(), torch.tensor(exacts).mean()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        w = self.hparams.warmup

        def lr_lambda(step):
            if step < w:
                return (step + 1) / w
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(1313)
    train = DataLoader(ReverseDataset(6000, 1), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(ReverseDataset(200, 2), batch_size=100, collate_fn=collate)
    module = PrefixLMModule()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(module, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.4f} gen_token_acc={float(m['val_gen_token_acc']):.3f} "
          f"gen_exact={float(m['val_gen_exact']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
