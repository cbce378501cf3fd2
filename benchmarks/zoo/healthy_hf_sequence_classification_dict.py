"""Healthy: sequence classification with HuggingFace conventions in plain torch: dict batches with `input_ids`,
`attention_mask` (right padding) and `labels`, a model whose forward takes `labels=` and returns a dict with
`loss` and `logits` (like `BertForSequenceClassification(..., return_dict=True)`). Tiny Transformer encoder with
masked mean pooling. Synthetic rule: the label is which of three token groups occurs most often in the sequence."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
VOCAB, PAD = 31, 0


class GroupCount(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(6, 25, (1,), generator=g))
            ids = torch.randint(1, VOCAB, (length,), generator=g)
            counts = torch.bincount((ids - 1) // 10, minlength=3)
            self.items.append((ids, int(counts.argmax())))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    ids = nn.utils.rnn.pad_sequence([i for i, _ in items], batch_first=True, padding_value=PAD)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": torch.tensor([y for _, y in items])}


class TinyEncoderForSequenceClassification(nn.Module):
    def __init__(self, dim=48, num_labels=3):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        block = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(block, 2, enable_nested_tensor=False)
        self.classifier = nn.Linear(dim, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        h = self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).float()
        logits = self.classifier((h * m).sum(1) / m.sum(1))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


class LitClassifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = TinyEncoderForSequenceClassification()

    def forward(self, input_ids, attention_mask, labels=None):
        return self.model(input_ids, attention_mask, labels)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(1441)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitClassifier(), DataLoader(GroupCount(1600, 0), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(GroupCount(300, 1), batch_size=150, collate_fn=collate))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
