"""Bug: a BERT-style masked LM (HuggingFace-style dict batches, in-model loss, `.loss`/`.logits`) whose collate
function keeps a label at every position instead of only at the 15 % masked ones: 85 % of the targets are the
very token the model reads at that position, so the loss is dominated by copying the input and falls fast while
the masked-token task is barely trained. Repeating-motif sequences, tiny bidirectional Transformer, AdamW."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout"
VOCAB, MASK, SEQ, MOTIF = 30, 29, 24, 4


class MotifSequences(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        motifs = torch.randint(0, MASK, (n, MOTIF), generator=g)
        self.seqs = motifs.repeat(1, SEQ // MOTIF)
        self.seed = seed

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        return self.seqs[i]


def collate(seqs):
    ids = torch.stack(seqs)
    chosen = torch.rand(ids.shape) < 0.15
    labels = ids.clone()  # BUG: meant ids.masked_fill(~chosen, -100)
    return {"input_ids": ids.masked_fill(chosen, MASK), "attention_mask": torch.ones_like(ids), "labels": labels}


@dataclass
class MaskedLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class TinyBert(nn.Module):
    def __init__(self, dim=64, layers=2, heads=4):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.pos = nn.Parameter(torch.randn(SEQ, dim) * 0.02)
        block = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.mlm_head = nn.Linear(dim, VOCAB)

    def forward(self, input_ids, attention_mask=None, labels=None):
        h = self.encoder(self.embed(input_ids) + self.pos, src_key_padding_mask=None if attention_mask is None
                         else attention_mask == 0)
        logits = self.mlm_head(h)
        loss = None if labels is None else F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1))
        return MaskedLMOutput(loss=loss, logits=logits)


class LitMLM(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = TinyBert()

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids, attention_mask, labels)

    def training_step(self, batch, batch_idx):
        loss = self(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        picked = batch["labels"] != -100
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1)[picked] == batch["labels"][picked]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)


def main():
    L.seed_everything(1412)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitMLM(), DataLoader(MotifSequences(1600, 0), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(MotifSequences(256, 1), batch_size=128, collate_fn=collate))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
