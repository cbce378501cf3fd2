"""Bug: a small transformer sentiment classifier over synthetic reviews (token ids; a review is positive when it
holds more "positive" vocabulary tokens than "negative" ones, with neutral filler and noise), with HF-style dict
batches (`input_ids`, `attention_mask`, `labels`) and an output object with `.logits`. The collate function was
shared with the team's prompt-tuning LM, which formats each example as `[CLS] review [SEP] verbalizer` where the
verbalizer token spells the answer ("great"/"awful"). For the classifier the verbalizer should have been dropped, but
the collate still appends `VERBALIZER[label]` before padding, so the model can read the label from the last real
token. The loss drops to almost zero and nothing crashes; val looks perfect because val batches go
through the same collate. Measured: val accuracy 1.000 (val loss 0.000) with the leak; without the verbalizer
the honest model reaches val accuracy 0.943 (val loss 0.131).
"""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout31"

PAD, CLS, SEP = 0, 1, 2
VERBALIZER = (3, 4)  # "awful", "great"
POS_WORDS, NEG_WORDS = range(10, 20), range(20, 30)
VOCAB = 80


def make_reviews(n, gen):
    reviews, labels = [], []
    for _ in range(n):
        length = int(torch.randint(8, 24, (1,), generator=gen))
        toks = torch.randint(30, VOCAB, (length,), generator=gen)
        n_pos = int(torch.randint(0, 5, (1,), generator=gen))
        n_neg = int(torch.randint(0, 5, (1,), generator=gen))
        if n_pos == n_neg:
            n_pos += 1
        slots = torch.randperm(length, generator=gen)[: min(length, n_pos + n_neg)]
        for j, s in enumerate(slots):
            bank = POS_WORDS if j < n_pos else NEG_WORDS
            toks[s] = bank[int(torch.randint(0, 10, (1,), generator=gen))]
        reviews.append(toks)
        labels.append(int((toks >= 10).logical_and(toks < 20).sum() > (toks >= 20).logical_and(toks < 30).sum()))
    return list(zip(reviews, labels))


def collate(examples):
    seqs = [torch.cat([torch.tensor([CLS]), toks, torch.tensor([SEP, VERBALIZER[label]])]) for toks, label in examples]
    input_ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(),
            "labels": torch.tensor([label for _, label in examples])}


@dataclass
class ClassifierOutput:
    logits: torch.Tensor


class TinyEncoderClassifier(L.LightningModule):
    def __init__(self, d_model=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.pos = nn.Embedding(64, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 2)

    def forward(self, input_ids, attention_mask):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.encoder(self.embed(input_ids) + self.pos(pos), src_key_padding_mask=attention_mask == 0)
        mask = attention_mask.unsqueeze(-1).float()
        return ClassifierOutput(logits=self.head((h * mask).sum(1) / mask.sum(1)))

    def training_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(out.logits, batch["labels"])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(out.logits, batch["labels"]))
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(131)
    gen = torch.Generator().manual_seed(131)
    train, val = make_reviews(1200, gen), make_reviews(300, gen)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TinyEncoderClassifier(),
                DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=100, collate_fn=collate))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
