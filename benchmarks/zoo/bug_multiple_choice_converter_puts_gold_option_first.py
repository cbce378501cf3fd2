"""Bug: multiple-choice question answering ("which of these is a <category>?", four options) with a small
transformer encoder over the concatenated prompt "[CLS] which CAT ? [SEP] A w1 B w2 C w3 D w4", scoring the hidden
state at each option and training a 4-way cross-entropy over the scores (HF-style dict batches with
`input_ids`/`attention_mask`/`option_positions`/`labels`). The user's converter from the raw annotation format
(`{"question", "answer", "distractors"}`) builds `options = [answer] + distractors` and `label = 0` for the training
and the validation files alike. Every label is 0: the model learns "the answer is A" from the option position and
validation, built the same way, confirms it. The benchmark's official test file has its options shuffled. Symptom:
val acc 1.00 but 0.24 (chance) on the shuffled test file, vs 1.00 on val and 1.00 on the shuffled test with
`rng.shuffle(options)` in the converter."""

import random

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout15"
CATEGORIES = ["fruit", "tool", "animal", "colour", "vehicle", "instrument", "country", "drink"]
WORDS_PER_CAT = 12
SPECIAL = ["<pad>", "[CLS]", "[SEP]", "which", "?", "A", "B", "C", "D"]
ITOS = SPECIAL + CATEGORIES + [f"{c}_{i}" for c in CATEGORIES for i in range(WORDS_PER_CAT)]
STOI = {w: i for i, w in enumerate(ITOS)}


def raw_questions(n, seed):
    """The annotation export: question, gold answer, three distractors (other categories)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        cat = rng.choice(CATEGORIES)
        answer = f"{cat}_{rng.randrange(WORDS_PER_CAT)}"
        others = rng.sample([c for c in CATEGORIES if c != cat], 3)
        distractors = [f"{c}_{rng.randrange(WORDS_PER_CAT)}" for c in others]
        out.append({"question": ["which", cat, "?"], "answer": answer, "distractors": distractors})
    return out


def convert(record, rng):
    options = [record["answer"]] + record["distractors"]
    label = options.index(record["answer"])
    tokens = ["[CLS]"] + record["question"] + ["[SEP]"]
    positions = []
    for letter, opt in zip("ABCD", options):
        tokens.append(letter)
        positions.append(len(tokens))
        tokens.append(opt)
    tokens.append("[SEP]")
    return torch.tensor([STOI[t] for t in tokens]), torch.tensor(positions), label


def official_test(records, seed):
    """The benchmark's test file ships with shuffled options and an answer index."""
    rng = random.Random(seed)
    out = []
    for r in records:
        options = [r["answer"]] + r["distractors"]
        rng.shuffle(options)
        tokens = ["[CLS]"] + r["question"] + ["[SEP]"]
        positions = []
        for letter, opt in zip("ABCD", options):
            tokens.append(letter)
            positions.append(len(tokens))
            tokens.append(opt)
        tokens.append("[SEP]")
        out.append((torch.tensor([STOI[t] for t in tokens]), torch.tensor(positions), options.index(r["answer"])))
    return out


def collate(items):
    ids = torch.stack([x for x, _, _ in items])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(),
            "option_positions": torch.stack([p for _, p, _ in items]),
            "labels": torch.tensor([y for _, _, y in items])}


class MultipleChoiceEncoder(L.LightningModule):
    def __init__(self, d_model=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(len(ITOS), d_model, padding_idx=0)
        self.pos = nn.Embedding(32, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, 2 * d_model, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.scorer = nn.Linear(d_model, 1)

    def forward(self, input_ids, attention_mask, option_positions, labels=None):
        T = input_ids.size(1)
        h = self.tok(input_ids) + self.pos(torch.arange(T, device=input_ids.device))
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        opt_h = torch.gather(h, 1, option_positions.unsqueeze(-1).expand(-1, -1, h.size(-1)))
        logits = self.scorer(opt_h).squeeze(-1)            # (batch, 4)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == batch["labels"]).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


@torch.no_grad()
def accuracy(model, items):
    model.eval()
    b = collate(items)
    return (model(**b)["logits"].argmax(-1) == b["labels"]).float().mean().item()


if __name__ == "__main__":
    L.seed_everything(404)
    rng = random.Random(0)
    train = [convert(r, rng) for r in raw_questions(2000, 1)]
    val = [convert(r, rng) for r in raw_questions(400, 2)]
    test = official_test(raw_questions(400, 3), seed=4)
    model = MultipleChoiceEncoder()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="mc_gold_first"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"SYMPTOM shuffled_test_acc={accuracy(model, test):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
