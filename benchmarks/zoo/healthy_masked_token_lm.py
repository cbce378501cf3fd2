"""Healthy: a small BERT-style masked language model on synthetic token sequences with a learnable rule (each
sequence repeats a short motif). 15 % of the positions are masked (80 % [MASK], 10 % random, 10 % kept) and only
those carry a label; every other label is -100 (ignored by cross_entropy), as HuggingFace's
DataCollatorForLanguageModeling does. Transformer encoder, AdamW with weight decay."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
VOCAB, MASK, LENGTH = 40, 1, 32


class Motifs(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.seqs = []
        for _ in range(n):
            period = int(torch.randint(2, 6, (1,), generator=g))
            motif = torch.randint(2, VOCAB, (period,), generator=g)
            self.seqs.append(motif.repeat(LENGTH // period + 1)[:LENGTH])
        self.g = torch.Generator().manual_seed(seed + 1)

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        return self.seqs[i]


def mask_tokens(batch, g=torch.Generator().manual_seed(3)):
    ids = torch.stack(batch)
    labels = ids.clone()
    chosen = torch.rand(ids.shape, generator=g) < 0.15
    labels[~chosen] = -100
    roll = torch.rand(ids.shape, generator=g)
    ids = ids.clone()
    ids[chosen & (roll < 0.8)] = MASK
    random_tokens = torch.randint(2, VOCAB, ids.shape, generator=g)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    ids[swap] = random_tokens[swap]
    return {"input_ids": ids, "labels": labels}


class MaskedLM(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.pos = nn.Parameter(torch.randn(LENGTH, 64) * 0.02)
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(64, VOCAB)

    def forward(self, input_ids):
        return self.head(self.encoder(self.embed(input_ids) + self.pos))

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1), ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"])
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1)))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)


def main():
    L.seed_everything(17)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MaskedLM(), DataLoader(Motifs(1500, 0), batch_size=32, shuffle=True, collate_fn=mask_tokens),
                DataLoader(Motifs(200, 5), batch_size=100, collate_fn=mask_tokens))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
