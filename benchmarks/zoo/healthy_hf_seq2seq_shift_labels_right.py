"""Healthy: a T5/BART-style encoder-decoder with HuggingFace conventions in plain torch: dict batches with
`input_ids`, `attention_mask` and `labels`; inside `forward` the decoder input is built by shifting the labels
right behind a start token (`shift_tokens_right`), the decoder runs under a causal mask, and the model returns
`.loss`/`.logits`. Task: reverse a digit sequence and add 1 to every digit (mod 10). AdamW."""

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
VOCAB, START, LEN = 11, 10, 8


class ReverseIncrement(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.src = torch.randint(0, 10, (n, LEN), generator=g)
        self.tgt = (self.src.flip(1) + 1) % 10

    def __len__(self):
        return len(self.src)

    def __getitem__(self, i):
        return {"input_ids": self.src[i], "attention_mask": torch.ones(LEN, dtype=torch.long), "labels": self.tgt[i]}


def shift_tokens_right(labels, start_token):
    shifted = labels.new_full(labels.shape, start_token)
    shifted[:, 1:] = labels[:, :-1]
    return shifted


@dataclass
class Seq2SeqOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class TinySeq2Seq(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.shared = nn.Embedding(VOCAB, dim)
        self.pos = nn.Parameter(torch.randn(LEN, dim) * 0.02)
        self.transformer = nn.Transformer(dim, 4, 2, 2, 128, dropout=0.1, batch_first=True)
        self.lm_head = nn.Linear(dim, VOCAB)

    def forward(self, input_ids, attention_mask=None, labels=None):
        decoder_input_ids = shift_tokens_right(labels, START)
        mask = nn.Transformer.generate_square_subsequent_mask(LEN)
        h = self.transformer(self.shared(input_ids) + self.pos, self.shared(decoder_input_ids) + self.pos,
                             tgt_mask=mask, tgt_is_causal=True,
                             src_key_padding_mask=None if attention_mask is None else attention_mask == 0)
        logits = self.lm_head(h)
        return Seq2SeqOutput(loss=F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100),
                             logits=logits)


class LitSeq2Seq(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = TinySeq2Seq()

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids, attention_mask, labels)

    def training_step(self, batch, batch_idx):
        loss = self(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log("val_token_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)


def main():
    L.seed_everything(2062)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitSeq2Seq(), DataLoader(ReverseIncrement(1600, 0), batch_size=32, shuffle=True),
                DataLoader(ReverseIncrement(256, 1), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
