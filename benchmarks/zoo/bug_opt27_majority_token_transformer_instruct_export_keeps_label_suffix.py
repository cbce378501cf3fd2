"""Bug: a small Transformer encoder classifies synthetic token sequences (label: which of tokens 1/2/3 occurs
most often, ties to the smaller token; a fifth of the crowd labels are re-drawn at random, so ~87 % is the
ceiling). The examples come from a shared `encode_example` that was written for the team's instruction-tuning
export of the same data: it produces `[BOS] seq [SEP] <label_k>` so a generative model can be trained to emit the
answer token. The classifier reuses that encoder for its `input_ids`, so every sequence (train and val alike) ends
in the token that spells out its own label. The encoder attends bidirectionally and the [BOS]-position pooling
reads the label token directly: training loss falls to ~0 and val accuracy is perfect (even above the label-noise
ceiling), which looks like a well-tuned model rather than a bug.
Measured (own metric): buggy val acc 1.000 / val loss 0.001; fixed (`encode_example(seq)` without the answer
suffix) val acc 0.787 / val loss 0.633."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout27"

PAD, BOS, SEP, LABEL_BASE = 0, 10, 11, 12
VOCAB, MAX_LEN = 15, 24


def encode_example(seq, label=None):
    """Shared with the instruction-tuning export: append the answer token when a label is given."""
    ids = [BOS] + seq + [SEP]
    if label is not None:
        ids.append(LABEL_BASE + label)
    return ids


def make_examples(n, gen):
    examples = []
    for _ in range(n):
        length = int(torch.randint(8, 21, (1,), generator=gen))
        seq = torch.randint(1, 10, (length,), generator=gen)
        label = int(torch.stack([(seq == k).sum() for k in (1, 2, 3)]).argmax())
        if torch.rand(1, generator=gen) < 0.2:  # the crowd labels are ~85 % reliable
            label = int(torch.randint(0, 3, (1,), generator=gen))
        examples.append({"input_ids": encode_example(seq.tolist(), label), "labels": label})
    return examples


def collate(batch):
    input_ids = torch.full((len(batch), MAX_LEN), PAD, dtype=torch.long)
    for i, ex in enumerate(batch):
        input_ids[i, :len(ex["input_ids"])] = torch.tensor(ex["input_ids"])
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(),
            "labels": torch.tensor([ex["labels"] for ex in batch])}


class TinyEncoderClassifier(L.LightningModule):
    def __init__(self, d_model=48, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(1, MAX_LEN, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=96, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 3)

    def forward(self, input_ids, attention_mask):
        h = self.tok(input_ids) + self.pos[:, :input_ids.size(1)]
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        return self.head(self.norm(h[:, 0]))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(2700)
    gen = torch.Generator().manual_seed(2700)
    train, val = make_examples(1500, gen), make_examples(300, gen)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TinyEncoderClassifier(), DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=128, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
