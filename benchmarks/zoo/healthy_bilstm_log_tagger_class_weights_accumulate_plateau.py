"""Healthy: tagging error codes and version numbers in support-ticket text with an Embedding + 2-layer BiLSTM
tagger. Numbers are tagged ERR or VER only by their context ("error 404", "since version 12", "code 7 after
updating to 3") and are O elsewhere ("2 days", "order 55"), so about 94 % of the tokens are O: the loss uses
class weights (inverse square root of the tag frequency) and ignore_index=-100 on padding. Small batches of 8
with `accumulate_grad_batches=4`, Adam + ReduceLROnPlateau on val loss, dict batches. Final val entity-token
recall 1.00, precision 1.00, token acc 1.00."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
TAGS = ["O", "ERR", "VER"]
WORDS = ["i", "my", "the", "app", "shows", "crashes", "with", "after", "updating", "to", "since", "version",
         "error", "code", "days", "order", "for", "it", "says", "again", "and", "still", "get", "please", "fix",
         "installed", "hours", "ago", "got", "tried", "times", "ticket", "on"]
NUMS = [str(i) for i in range(200)]
VOCAB = {w: i + 1 for i, w in enumerate(WORDS + NUMS)}


def tickets(n, seed):
    g = torch.Generator().manual_seed(seed)

    def num():
        return NUMS[int(torch.randint(200, (1,), generator=g))]

    def filler(k):
        return [(WORDS[int(i)], "O") for i in torch.randint(0, 12, (k,), generator=g)]

    patterns = [
        lambda: [("error", "O"), (num(), "ERR")],
        lambda: [("code", "O"), (num(), "ERR")],
        lambda: [("since", "O"), ("version", "O"), (num(), "VER")],
        lambda: [("updating", "O"), ("to", "O"), (num(), "VER")],
        lambda: [(num(), "O"), ("days", "O")],
        lambda: [("order", "O"), (num(), "O")],
        lambda: [("tried", "O"), (num(), "O"), ("times", "O")],
        lambda: [(num(), "O"), ("hours", "O"), ("ago", "O")],
    ]
    out = []
    for _ in range(n):
        toks = filler(int(torch.randint(1, 4, (1,), generator=g)))
        for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
            toks += patterns[int(torch.randint(len(patterns), (1,), generator=g))]()
            toks += filler(int(torch.randint(2, 7, (1,), generator=g)))
        out.append((torch.tensor([VOCAB[w] for w, _ in toks]), torch.tensor([TAGS.index(t) for _, t in toks])))
    return out


def collate(items):
    ids = pad_sequence([i for i, _ in items], batch_first=True)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(),
            "labels": pad_sequence([y for _, y in items], batch_first=True, padding_value=-100)}


def tag_weights(data):
    counts = torch.bincount(torch.cat([y for _, y in data]), minlength=len(TAGS)).float()
    w = counts.sum() / counts
    return (w / w.min()).sqrt()


class LogTagger(L.LightningModule):
    def __init__(self, class_weights, dim=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("class_weights", torch.as_tensor(class_weights))
        self.emb = nn.Embedding(len(VOCAB) + 1, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, dim, num_layers=2, batch_first=True, bidirectional=True, dropout=0.2)
        self.head = nn.Linear(2 * dim, len(TAGS))

    def forward(self, input_ids, attention_mask):
        h, _ = self.lstm(self.emb(input_ids))
        return self.head(h)

    def loss(self, logits, labels):
        return F.cross_entropy(logits.transpose(1, 2), labels, weight=self.class_weights, ignore_index=-100)

    def training_step(self, batch, batch_idx):
        loss = self.loss(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        y, pred = batch["labels"], logits.argmax(-1)
        keep, ent = y != -100, y > 0
        hit = (pred == y) & ent
        self.log_dict({"val_loss": self.loss(logits, y), "val_acc": (pred == y)[keep].float().mean(),
                       "val_entity_recall": hit.sum() / ent.sum(),
                       "val_entity_precision": hit.sum() / ((pred > 0) & keep).sum().clamp(min=1)})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


if __name__ == "__main__":
    L.seed_everything(404)
    train, val = tickets(1600, 1), tickets(400, 2)
    model = LogTagger(tag_weights(train))
    trainer = L.Trainer(
        max_epochs=5,
        accelerator="cpu",
        devices=1,
        accumulate_grad_batches=4,
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=8, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_entity_recall={m['val_entity_recall'].item():.3f} "
          f"val_entity_precision={m['val_entity_precision'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
