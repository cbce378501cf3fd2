"""Healthy: a prefix LM (UniLM / T5-"prefix LM" style) in HuggingFace style: dict batches `input_ids` /
`attention_mask` / `labels` with -100 on the prompt, loss computed inside the model, an output object with
`.loss`/`.logits`. The prompt (a list of digits followed by [SEP]) is attended bidirectionally; the answer (the same
digits sorted) is generated causally - the attention mask is causal everywhere except inside the prompt block, on
purpose, and prompt positions carry no loss. Variable prompt lengths with right padding, AdamW + linear warm-up +
cosine per step, gradient clipping. Final: val token accuracy on the answer 0.96, greedy exact match 0.74 (of 100)."""

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
PAD, SEP, EOS, DIGIT0 = 0, 1, 2, 3
VOCAB, MAX_N = DIGIT0 + 10, 10
MAX_LEN = 2 * MAX_N + 2


def make_examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(4, MAX_N + 1, (1,), generator=g))
        digits = torch.randint(0, 10, (k,), generator=g)
        out.append((DIGIT0 + digits, DIGIT0 + digits.sort().values))
    return out


class SortPrompts(Dataset):
    def __init__(self, examples):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        prompt, answer = self.examples[i]
        ids = torch.cat([prompt, torch.tensor([SEP]), answer, torch.tensor([EOS])])
        labels = ids.clone()
        labels[: len(prompt) + 1] = -100
        return {"input_ids": ids, "labels": labels, "prefix_len": torch.tensor(len(prompt) + 1)}


def collate(items):
    ids = nn.utils.rnn.pad_sequence([it["input_ids"] for it in items], batch_first=True, padding_value=PAD)
    labels = nn.utils.rnn.pad_sequence([it["labels"] for it in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels,
            "prefix_len": torch.stack([it["prefix_len"] for it in items])}


@dataclass
class LMOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor


class PrefixLM(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB)

    def prefix_mask(self, prefix_len, t):
        i = torch.arange(t, device=prefix_len.device)
        causal = i[None, :, None] >= i[None, None, :]
        in_prefix = i[None, None, :] < prefix_len[:, None, None]          # keys inside the prompt: always visible
        allowed = causal | in_prefix
        allowed = allowed | torch.eye(t, dtype=torch.bool, device=prefix_len.device)
        return (~allowed).repeat_interleave(self.heads, 0)                  # (B*heads, t, t), True = blocked

    def forward(self, input_ids, attention_mask, prefix_len, labels=None):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos.weight[:t]
        h = self.blocks(x, mask=self.prefix_mask(prefix_len, t), src_key_padding_mask=attention_mask == 0)
        logits = self.lm_head(self.norm(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return LMOutput(loss, logits)


class LitPrefixLM(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=60):
        super().__init__()
        self.save_hyperparameters()
        self.model = PrefixLM()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        tgt = batch["labels"][:, 1:]
        sel = tgt != -100
        acc = (out.logits[:, :-1].argmax(-1)[sel] == tgt[sel]).float().mean()
        self.log("val_loss", out.loss)
        self.log("val_token_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.05)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def exact_match(model, examples):
    model.eval()
    hits = 0
    for prompt, answer in examples:
        ids = torch.cat([prompt, torch.tensor([SEP])])[None]
        plen = torch.tensor([ids.shape[1]])
        for _ in range(len(answer)):
            logits = model(ids, torch.ones_like(ids), plen).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
        hits += int(torch.equal(ids[0, plen.item():], answer))
    return hits / len(examples)


def main():
    L.seed_everything(101)
    train_ex, val_ex = make_examples(4000, 1), make_examples(600, 2)
    train = DataLoader(SortPrompts(train_ex), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(SortPrompts(val_ex), batch_size=200, collate_fn=collate)
    lit = LitPrefixLM()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        gradient_clip_val=1.0, logger=TensorBoardLogger("lightning_logs", name="prefix_lm"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(lit, train, val)
    print(f"SYMPTOM val token acc {trainer.callback_metrics['val_token_acc'].item():.3f} "
          f"greedy exact match {exact_match(lit.model, val_ex[:100]):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
