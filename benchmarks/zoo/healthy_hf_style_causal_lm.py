"""Healthy: a HuggingFace-style causal LM (dict batches with `input_ids` / `attention_mask` / `labels == input_ids`,
the loss shifted inside the model, an output object with `.loss` and `.logits`), trained on synthetic counting
sequences with AdamW and a linear warm-up."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
VOCAB, SEQ = 60, 24
SHIFT = True


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class CountingTokens(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(0, VOCAB, (n, 1), generator=g)
        step = torch.randint(1, 5, (n, 1), generator=g)
        self.ids = (start + step * torch.arange(SEQ)) % VOCAB

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


class TinyCausalLM(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, dim)
        self.wpe = nn.Embedding(SEQ, dim)
        layer = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.h = nn.TransformerEncoder(layer, 2)
        self.lm_head = nn.Linear(dim, VOCAB, bias=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        t = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=x.device)
        pad = attention_mask == 0 if attention_mask is not None else None
        logits = self.lm_head(self.h(x, mask=causal, is_causal=True, src_key_padding_mask=pad))
        loss = None
        if labels is not None:
            if SHIFT:
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
            else:
                loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


class LitLM(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = TinyCausalLM()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 20))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


def main():
    L.seed_everything(42)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitLM(), DataLoader(CountingTokens(512, 0), batch_size=32, shuffle=True),
                DataLoader(CountingTokens(128, 1), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
