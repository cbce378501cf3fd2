"""Healthy: a HuggingFace-style causal language model written in plain torch. Batches are dicts with
`input_ids`, `attention_mask` and `labels` (= input_ids, padding set to -100); the model shifts the labels inside
`forward` and returns an output object with `.loss` and `.logits`, as `GPT2LMHeadModel` does. Tiny pre-norm
Transformer with a causal mask, on synthetic arithmetic sequences x[t+1] = (x[t] + step) mod 23 of random length
(right-padded), AdamW with linear warm-up then cosine decay per step."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
VOCAB, PAD, MAXLEN = 24, 23, 20


class ArithmeticSequences(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(8, MAXLEN + 1, (1,), generator=g))
            start, step = torch.randint(0, 23, (1,), generator=g), torch.randint(1, 4, (1,), generator=g)
            self.items.append((start + step * torch.arange(length)) % 23)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(seqs):
    ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
    mask = (ids != PAD).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class TinyGPT(nn.Module):
    def __init__(self, dim=64, layers=2, heads=4):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, dim)
        self.wpe = nn.Embedding(MAXLEN, dim)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, VOCAB, bias=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        n = input_ids.shape[1]
        h = self.wte(input_ids) + self.wpe(torch.arange(n, device=input_ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(n, device=input_ids.device)
        pad = None if attention_mask is None else attention_mask == 0
        h = self.blocks(h, mask=causal, src_key_padding_mask=pad, is_causal=True)
        logits = self.lm_head(self.ln_f(h))
        loss = None
        if labels is not None:
            # the model shifts: position t predicts token t + 1
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


class LitLM(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=30, total=300):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPT()

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids, attention_mask=attention_mask, labels=labels)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        w, t = self.hparams.warmup, self.hparams.total

        def lr_lambda(step):
            if step < w:
                return (step + 1) / w
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / (t - w))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(1401)
    train = DataLoader(ArithmeticSequences(1600, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ArithmeticSequences(256, 1), batch_size=128, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitLM(total=6 * len(train)), train, val)
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
