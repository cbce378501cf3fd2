"""Bug: a small Transformer sentence encoder for review sentiment (token + learned position embeddings, 2 encoder
layers with a padding mask, masked mean pooling, linear head; dict batches; AdamW with linear warm-up/decay). Sentiment
words can be negated ("not", "never", "hardly" flip the next sentiment word), so word order matters. The class has an
`encode()` method that the same script later uses to export sentence embeddings for a search index; to make that
export cheap the author decorated it with `@torch.no_grad()`. `forward()` calls `encode()` too, so during training
the whole encoder (embeddings, attention, feed-forward, norms) gets no gradient at all and only the linear head is
fitted on top of random features.
Symptom: val acc 0.61 vs 0.91 with the decorator removed (the export wrapped in `torch.no_grad()` at the call site)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout12"

POS = ["good", "great", "love", "excellent", "fine", "solid", "happy", "nice"]
NEG = ["bad", "awful", "hate", "poor", "broken", "terrible", "sad", "weak"]
NEGATORS = ["not", "never", "hardly"]
FILLER = [f"f{i}" for i in range(80)]
VOCAB = ["[PAD]", "[CLS]"] + POS + NEG + NEGATORS + FILLER
ID = {w: i for i, w in enumerate(VOCAB)}
MAX_LEN = 24


def make_review(g):
    def pick(xs):
        return xs[int(torch.randint(len(xs), (1,), generator=g))]

    while True:
        words, score = [], 0
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            words += [pick(FILLER) for _ in range(int(torch.randint(1, 4, (1,), generator=g)))]
            positive = float(torch.rand(1, generator=g)) < 0.5
            negated = float(torch.rand(1, generator=g)) < 0.4
            if negated:
                words.append(pick(NEGATORS))
            words.append(pick(POS if positive else NEG))
            score += (1 if positive else -1) * (-1 if negated else 1)
        if score != 0:
            return torch.tensor([ID[w] for w in words[:MAX_LEN]]), int(score > 0)


def collate(batch):
    ids = pad_sequence([b[0] for b in batch], batch_first=True, padding_value=0)
    return {"input_ids": ids, "attention_mask": ids != 0, "labels": torch.tensor([b[1] for b in batch])}


class ReviewEncoder(L.LightningModule):
    def __init__(self, d=64, lr=4e-3, warmup=60):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(len(VOCAB), d, padding_idx=0)
        self.pos = nn.Embedding(MAX_LEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, 2)

    @torch.no_grad()
    def encode(self, input_ids, attention_mask):
        """Mean-pooled sentence embeddings (also used for the search-index export)."""
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.encoder(self.tok(input_ids) + self.pos(pos), src_key_padding_mask=~attention_mask)
        h = self.norm(h)
        m = attention_mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, input_ids, attention_mask, labels=None):
        logits = self.classifier(self.encode(input_ids, attention_mask))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log_dict({"val_loss": out["loss"],
                       "val_acc": (out["logits"].argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(88)
    g = torch.Generator().manual_seed(88)
    train = [make_review(g) for _ in range(5000)]
    val = [make_review(g) for _ in range(600)]
    model = ReviewEncoder()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, logger=TensorBoardLogger("lightning_logs", name="review_encoder"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=300, collate_fn=collate))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f}")

    # export sentence embeddings for the search index
    model.eval()
    batch = collate(val)
    emb = model.encode(batch["input_ids"], batch["attention_mask"])
    print(f"exported {tuple(emb.shape)} embeddings")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
