"""Bug: long-document classification (court filings into 3 case types) with a masked-mean-pool word encoder and
an MLP head, HuggingFace-style dict batches (`input_ids`/`attention_mask`/`labels`, loss inside the model),
AdamW + StepLR. Documents are ~300 tokens, longer than the 64-token window, so they are tokenised the HF way
with `return_overflowing_tokens=True, stride=16`: each document becomes ~6 overlapping windows that carry the
document's label. The user then does the usual `random_split(windows, [0.85, 0.15])` - on the windows, after
chunking - so almost every validation window has sibling windows (sharing 16 tokens at each edge and all of the
document's party names) in training. The model learns "party name -> case type" from the siblings and the val
metric measures that memorisation, not the case-type cues.

Symptom (measured): val acc 0.857 (val loss 0.39) with windows split at random vs 0.591 (val loss 1.50) when the
split is made on documents before chunking (the honest number; the party names never generalise). Runtime ~12 s."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout13"

N_CLASSES, N_CUE, N_FILL, N_NAMES = 3, 8, 300, 4000
PAD = 0
CUE0 = 1
FILL0 = CUE0 + N_CLASSES * N_CUE
NAME0 = FILL0 + N_FILL
VOCAB = NAME0 + N_NAMES


def make_documents(n, seed):
    """Token-id documents: filler, weak class cues (often from the wrong class), and 3 party names per document."""
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        y = int(torch.randint(0, N_CLASSES, (1,), generator=g))
        names = torch.randint(NAME0, VOCAB, (3,), generator=g)
        length = int(torch.randint(220, 380, (1,), generator=g))
        r = torch.rand(length, generator=g)
        toks = torch.randint(FILL0, NAME0, (length,), generator=g)
        cue_cls = torch.where(torch.rand(length, generator=g) < 0.45, torch.full((length,), y),
                              torch.randint(0, N_CLASSES, (length,), generator=g))
        cues = CUE0 + cue_cls * N_CUE + torch.randint(0, N_CUE, (length,), generator=g)
        toks = torch.where(r < 0.04, cues, toks)
        toks = torch.where((r >= 0.04) & (r < 0.10), names[torch.randint(0, 3, (length,), generator=g)], toks)
        docs.append((toks, y))
    return docs


def tokenize_with_overflow(doc_ids, max_length=64, stride=16):
    """Like a fast tokenizer with return_overflowing_tokens=True: windows of max_length overlapping by stride."""
    step = max_length - stride
    windows = []
    for start in range(0, max(1, len(doc_ids) - stride), step):
        windows.append(doc_ids[start:start + max_length])
    return windows


class WindowDataset(Dataset):
    def __init__(self, docs):
        self.rows = [{"input_ids": w, "labels": y} for toks, y in docs for w in tokenize_with_overflow(toks)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), t), PAD)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = b["input_ids"]
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(),
            "labels": torch.tensor([b["labels"] for b in batch])}


class MeanPoolClassifier(nn.Module):
    def __init__(self, d=96):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(0.1), nn.Linear(d, N_CLASSES))

    def forward(self, input_ids, attention_mask, labels=None):
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1)
        logits = self.head(pooled)
        return {"logits": logits, "loss": F.cross_entropy(logits, labels) if labels is not None else None}


class FilingClassifier(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = MeanPoolClassifier()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.3)]


if __name__ == "__main__":
    L.seed_everything(77)
    windows = WindowDataset(make_documents(700, seed=5))
    train_set, val_set = random_split(windows, [0.85, 0.15], generator=torch.Generator().manual_seed(0))
    train = DataLoader(train_set, batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(val_set, batch_size=256, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FilingClassifier(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM windows={len(windows)} val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
