"""Bug: a left-to-right (MEMM-style) part-of-speech tagger. Each position sees its word embedding plus an embedding
of the previous tag (gold tags during training, its own greedy predictions when tagging new text), a GRU runs over
the sequence and a linear head gives tag logits. Batches are HuggingFace-style dicts (`input_ids`,
`attention_mask`, `labels` with -100 on padding). The sentences come from a small grammar in which many words are
ambiguous (the same word is a NOUN after a determiner and a VERB after a pronoun). The previous-tag input is meant
to be the labels shifted right by one (a BOS tag first), but the collate function builds `prev_tags` from `labels`
without the shift (the shift was "done" in an earlier version of the dataset and removed), so every position is fed
its own gold tag. Teacher-forced validation looks perfect; greedy tagging, which feeds the previous prediction, falls
apart. Symptom: teacher-forced val acc 1.00 but greedy-decoding val acc 0.26, vs 0.99 / 0.97 with the shift."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout17"
TAGS = ["DET", "ADJ", "NOUN", "VERB", "PRON", "ADP", "ADV"]
BOS_TAG = len(TAGS)
WORDS = {
    "DET": ["the", "a", "this", "every"],
    "ADJ": ["red", "old", "quick", "quiet", "light", "cold"],
    "NOUN": ["dog", "park", "river", "book", "watch", "run", "light", "train", "city"],
    "VERB": ["sees", "book", "watch", "run", "train", "likes", "finds", "cold"],
    "PRON": ["she", "they", "we", "he"],
    "ADP": ["in", "near", "under", "with"],
    "ADV": ["often", "rarely", "quickly"],
}
VOCAB = ["<pad>"] + sorted({w for ws in WORDS.values() for w in ws})
W2I = {w: i for i, w in enumerate(VOCAB)}


def sentence(g):
    def pick(tag):
        ws = WORDS[tag]
        return ws[int(torch.randint(len(ws), (1,), generator=g))], tag

    def np_():
        out = [pick("DET")]
        if float(torch.rand(1, generator=g)) < 0.5:
            out.append(pick("ADJ"))
        return out + [pick("NOUN")]

    subj = np_() if float(torch.rand(1, generator=g)) < 0.6 else [pick("PRON")]
    out = subj
    if float(torch.rand(1, generator=g)) < 0.3:
        out.append(pick("ADV"))
    out += [pick("VERB")] + np_()
    if float(torch.rand(1, generator=g)) < 0.5:
        out += [pick("ADP")] + np_()
    return out


def make_corpus(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [sentence(g) for _ in range(n)]


def collate(batch):
    t = max(len(s) for s in batch)
    ids = torch.zeros(len(batch), t, dtype=torch.long)
    labels = torch.full((len(batch), t), -100)
    for i, s in enumerate(batch):
        ids[i, : len(s)] = torch.tensor([W2I[w] for w, _ in s])
        labels[i, : len(s)] = torch.tensor([TAGS.index(tag) for _, tag in s])
    prev_tags = labels.clamp(min=0)  # tag seen by each position
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "prev_tags": prev_tags, "labels": labels}


class MemmTagger(L.LightningModule):
    def __init__(self, d=64):
        super().__init__()
        self.word = nn.Embedding(len(VOCAB), d, padding_idx=0)
        self.prev = nn.Embedding(len(TAGS) + 1, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.head = nn.Linear(d, len(TAGS))

    def forward(self, input_ids, prev_tags, attention_mask=None, labels=None):
        h, _ = self.gru(self.word(input_ids) + self.prev(prev_tags))
        logits = self.head(h)
        loss = None if labels is None else F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
        return loss, logits

    def training_step(self, batch, batch_idx):
        loss, _ = self(**batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits = self(**batch)
        keep = batch["labels"] != -100
        acc = (logits.argmax(-1) == batch["labels"])[keep].float().mean()
        self.log_dict({"val_loss": loss, "val_acc_teacher_forced": acc})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)

    @torch.no_grad()
    def greedy_tag(self, input_ids):
        prev = torch.full_like(input_ids, BOS_TAG)
        out = torch.zeros_like(input_ids)
        for t in range(input_ids.shape[1]):
            _, logits = self(input_ids, prev)
            out[:, t] = logits[:, t].argmax(-1)
            if t + 1 < input_ids.shape[1]:
                prev[:, t + 1] = out[:, t]
        return out


def main():
    L.seed_everything(4242)
    train, val = make_corpus(3000, 10), make_corpus(600, 11)
    model = MemmTagger()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="memm_pos_tagger"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=128, collate_fn=collate))
    model.eval()
    batch = collate(val)
    pred = model.greedy_tag(batch["input_ids"])
    keep = batch["labels"] != -100
    greedy = (pred == batch["labels"])[keep].float().mean().item()
    print(f"SYMPTOM val_acc_teacher_forced={trainer.callback_metrics['val_acc_teacher_forced'].item():.3f}")
    print(f"SYMPTOM val_acc_greedy={greedy:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
