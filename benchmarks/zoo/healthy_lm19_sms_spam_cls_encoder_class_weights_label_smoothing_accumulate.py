"""Healthy: SMS spam filtering with heavy class imbalance (about 6 % spam), HuggingFace style: a word tokenizer with
[CLS]/[SEP]/[PAD] fitted on the training messages, dict batches `input_ids`/`attention_mask`/`labels`, a one-layer
Transformer encoder classifying from the [CLS] position with dropout 0.3, and the loss computed inside the model as
class-weighted cross-entropy (inverse class frequency from the training labels) with label smoothing 0.05. Small
batches of 16 with `accumulate_grad_batches=4`, AdamW with no decay on biases/LayerNorm, linear warm-up and decay
per optimizer step, gradient clipping. Spam shares many words with ham; what marks it is a mix of money / urgency /
call-to-action words and digits. Final val balanced accuracy 0.950 (spam recall 0.91, ham recall 0.99)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"
HAM = ["see", "you", "at", "home", "later", "ok", "lunch", "tomorrow", "thanks", "love", "call", "me", "when",
       "free", "running", "late", "sorry", "dinner", "tonight", "meeting", "moved", "to", "the", "i", "will", "be"]
SPAM = ["win", "cash", "prize", "claim", "now", "urgent", "txt", "reply", "stop", "offer", "guaranteed", "cheap",
        "winner", "award", "credit"]
DIGITS = ["50", "100", "1000", "87121", "08001234", "2", "150p"]


def make_messages(n, g):
    pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]
    rows = []
    for _ in range(n):
        spam = int(torch.rand(1, generator=g) < 0.06)
        words = []
        for _ in range(int(torch.randint(5, 16, (1,), generator=g))):
            r = float(torch.rand(1, generator=g))
            if spam:
                words.append(pick(SPAM) if r < 0.4 else pick(DIGITS) if r < 0.6 else pick(HAM))
            else:
                words.append(pick(SPAM) if r < 0.02 else pick(DIGITS) if r < 0.04 else pick(HAM))
        rows.append((" ".join(words), spam))
    return rows


class Tokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(words)}}

    def __call__(self, texts):
        ids = [[2] + [self.vocab.get(w, 1) for w in t.split()] + [3] for t in texts]
        input_ids = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x)
        return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


class SpamEncoder(nn.Module):
    def __init__(self, vocab_size, class_weights, d=64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.pos = nn.Embedding(20, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.3, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(d, 2))
        self.register_buffer("class_weights", class_weights)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.embed(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        h = self.norm(self.encoder(x, src_key_padding_mask=attention_mask == 0))
        logits = self.classifier(h[:, 0])
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels, weight=self.class_weights, label_smoothing=0.05)
        return {"loss": loss, "logits": logits}


class LitSpam(L.LightningModule):
    def __init__(self, vocab_size, class_weights):
        super().__init__()
        self.model = SpamEncoder(vocab_size, class_weights)

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        pred, y = out["logits"].argmax(-1), batch["labels"]
        spam_recall, ham_recall = (pred[y == 1] == 1).float().mean(), (pred[y == 0] == 0).float().mean()
        self.log("val_loss", out["loss"])
        self.log_dict({"val_spam_recall": spam_recall, "val_ham_recall": ham_recall,
                       "val_balanced_acc": (spam_recall + ham_recall) / 2})

    def configure_optimizers(self):
        named = list(self.model.named_parameters())
        no_decay = [p for n, p in named if p.ndim < 2 or "norm" in n]
        decay = [p for n, p in named if not (p.ndim < 2 or "norm" in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=2e-3)
        total = self.trainer.estimated_stepping_batches
        warmup = max(1, int(0.1 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(8)
    g = torch.Generator().manual_seed(8)
    train, val = make_messages(3000, g), make_messages(1000, g)
    tok = Tokenizer([t for t, _ in train])
    counts = torch.bincount(torch.tensor([y for _, y in train]), minlength=2).float()
    class_weights = counts.sum() / (2 * counts)

    def collate(batch):
        enc = tok([t for t, _ in batch])
        enc["labels"] = torch.tensor([y for _, y in batch])
        return enc

    lit = LitSpam(len(tok.vocab), class_weights)
    trainer = L.Trainer(max_epochs=6, accumulate_grad_batches=4, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_spam"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, DataLoader(train, batch_size=16, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=500, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_balanced_acc={m['val_balanced_acc'].item():.3f} spam_recall={m['val_spam_recall'].item():.3f} "
          f"ham_recall={m['val_ham_recall'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
