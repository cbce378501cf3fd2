"""Healthy: review sentiment where negators flip the next cue word ("not good", "never disappointing") with a
Kim-style text CNN (kernel widths 2/3/4, max- and mean-pool over time with padding positions masked out), heavy
regularisation (embedding dropout 0.25, dropout 0.5 before the head, weight decay), 5 % noisy labels, and
Lightning's StochasticWeightAveraging over the last epochs. Dict batches with `input_ids`/`attention_mask`/
`labels`. Final (SWA-averaged) val acc 0.90, val loss 0.31 (the 5 % label noise caps acc near 0.95)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
POS = ["good", "great", "love", "excellent", "reliable", "comfortable", "works", "recommend"]
NEG = ["bad", "awful", "broken", "disappointing", "flimsy", "noisy", "refund", "waste"]
NEGATORS = ["not", "never", "hardly"]
FILLER = ["the", "a", "this", "it", "is", "was", "and", "but", "very", "really", "i", "my", "with", "for", "after",
          "week", "price", "size", "color", "delivery", "box", "phone", "chair", "case", "so", "quite", "just"]
VOCAB = {w: i + 1 for i, w in enumerate(POS + NEG + NEGATORS + FILLER)}


def reviews(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        score, toks = 0, []
        for _ in range(int(torch.randint(6, 30, (1,), generator=g))):
            r = float(torch.rand(1, generator=g))
            if r < 0.2:
                pos = float(torch.rand(1, generator=g)) < 0.5
                neg = float(torch.rand(1, generator=g)) < 0.35
                words = POS if pos else NEG
                if neg:
                    toks.append(NEGATORS[int(torch.randint(3, (1,), generator=g))])
                toks.append(words[int(torch.randint(len(words), (1,), generator=g))])
                score += (1 if pos else -1) * (-1 if neg else 1)
            else:
                toks.append(FILLER[int(torch.randint(len(FILLER), (1,), generator=g))])
        if score == 0:
            toks.append(POS[0] if float(torch.rand(1, generator=g)) < 0.5 else NEG[0])
            score = 1 if toks[-1] == POS[0] else -1
        y = int(score > 0)
        if float(torch.rand(1, generator=g)) < 0.05:
            y = 1 - y
        out.append((torch.tensor([VOCAB[w] for w in toks]), y))
    return out


def collate(items):
    ids = pad_sequence([i for i, _ in items], batch_first=True)
    if ids.shape[1] < 4:
        ids = F.pad(ids, (0, 4 - ids.shape[1]))
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([y for _, y in items])}


class TextCNN(L.LightningModule):
    def __init__(self, dim=64, channels=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(len(VOCAB) + 1, dim, padding_idx=0)
        self.emb_drop = nn.Dropout(0.25)
        self.convs = nn.ModuleList([nn.Conv1d(dim, channels, k) for k in (2, 3, 4)])
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(6 * channels, 2)

    def forward(self, input_ids, attention_mask):
        x = self.emb_drop(self.emb(input_ids)).transpose(1, 2)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(x))
            k = conv.kernel_size[0]
            valid = attention_mask[:, k - 1:].bool()  # a window is real if its last token is real
            m = valid.unsqueeze(1)
            pooled.append(h.masked_fill(~m, float("-inf")).amax(-1))
            pooled.append((h * m).sum(-1) / m.sum(-1).clamp(min=1))  # mean: how many cues, not just whether
        return self.head(self.drop(torch.cat(pooled, 1)))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log_dict({"val_loss": F.cross_entropy(logits, batch["labels"]),
                       "val_acc": (logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.05)


if __name__ == "__main__":
    L.seed_everything(99)
    model = TextCNN()
    trainer = L.Trainer(
        max_epochs=16,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="text_cnn_swa"),
        callbacks=lightning_sanity.default_callbacks() + [StochasticWeightAveraging(swa_lrs=5e-4, swa_epoch_start=11)],
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(reviews(4000, 1), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(reviews(600, 2), batch_size=300, collate_fn=collate))
    val_metrics = trainer.validate(model, DataLoader(reviews(600, 2), batch_size=300, collate_fn=collate),
                                   verbose=False)[0]
    print(f"SYMPTOM swa_val_acc={val_metrics['val_acc']:.3f} swa_val_loss={val_metrics['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
