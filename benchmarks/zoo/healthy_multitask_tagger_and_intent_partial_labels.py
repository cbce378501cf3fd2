"""Healthy: a multi-task utterance model - a shared Transformer encoder with a slot-tagging head (per token) and an
intent head (on a [CLS] token). Two data sources are mixed: utterances annotated with intent only (their `tags` are
all -100) and utterances annotated with both. A batch can therefore hold few or no tag labels; the tagging loss is
computed with ignore_index=-100 and only added when the batch has at least one tag label. Tag classes are heavily
imbalanced (mostly "O"), handled with class weights; label smoothing 0.1 on the intent head; OneCycle per step;
dict batches with `input_ids`/`attention_mask`/`intent`/`tags`. 70 % of training utterances carry no tags.
Final: val intent accuracy 1.00, slot accuracy on non-O tokens 1.00 (the synthetic task is clean)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
PAD, CLS = 0, 1
N_INTENTS, N_SLOTS = 6, 4                 # tags: 0 = O, 1..4 = slot types
SLOT_VOCAB, INTENT_VOCAB, FILL_VOCAB = 20, 8, 60
SLOT0 = 2
INTENT0 = SLOT0 + N_SLOTS * SLOT_VOCAB
FILL0 = INTENT0 + N_INTENTS * INTENT_VOCAB
VOCAB = FILL0 + FILL_VOCAB
MAX_LEN = 18


def make_utterances(n, seed, frac_tagged):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        intent = int(torch.randint(0, N_INTENTS, (1,), generator=g))
        length = int(torch.randint(8, MAX_LEN, (1,), generator=g))
        ids = FILL0 + torch.randint(0, FILL_VOCAB, (length,), generator=g)
        tags = torch.zeros(length, dtype=torch.long)
        pos = torch.randperm(length, generator=g)
        ids[pos[0]] = INTENT0 + intent * INTENT_VOCAB + int(torch.randint(0, INTENT_VOCAB, (1,), generator=g))
        for k in range(int(torch.randint(1, 3, (1,), generator=g))):
            slot = int(torch.randint(0, N_SLOTS, (1,), generator=g))
            p = int(pos[1 + k])
            ids[p] = SLOT0 + slot * SLOT_VOCAB + int(torch.randint(0, SLOT_VOCAB, (1,), generator=g))
            tags[p] = 1 + slot
        if float(torch.rand(1, generator=g)) > frac_tagged:
            tags[:] = -100
        rows.append((torch.cat([torch.tensor([CLS]), ids]), torch.cat([torch.tensor([-100]), tags]), intent))
    return rows


class Utterances(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        ids, tags, intent = self.rows[i]
        return {"input_ids": ids, "tags": tags, "intent": torch.tensor(intent)}


def collate(items):
    ids = nn.utils.rnn.pad_sequence([it["input_ids"] for it in items], batch_first=True, padding_value=PAD)
    tags = nn.utils.rnn.pad_sequence([it["tags"] for it in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "tags": tags,
            "intent": torch.stack([it["intent"] for it in items])}


class JointModel(L.LightningModule):
    def __init__(self, tag_weights, d=64, lr=3e-3, tag_loss_weight=1.0):
        super().__init__()
        self.save_hyperparameters(ignore=["tag_weights"])
        self.register_buffer("tag_weights", tag_weights)
        self.tok = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN + 1, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.tag_head = nn.Linear(d, 1 + N_SLOTS)
        self.intent_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(d, N_INTENTS))

    def forward(self, input_ids, attention_mask, **_):
        h = self.encoder(self.tok(input_ids) + self.pos.weight[: input_ids.shape[1]],
                         src_key_padding_mask=attention_mask == 0)
        return {"tag_logits": self.tag_head(h), "intent_logits": self.intent_head(h[:, 0])}

    def losses(self, batch, out):
        intent_loss = F.cross_entropy(out["intent_logits"], batch["intent"], label_smoothing=0.1)
        if (batch["tags"] != -100).any():
            tag_loss = F.cross_entropy(out["tag_logits"].transpose(1, 2), batch["tags"],
                                       weight=self.tag_weights, ignore_index=-100)
        else:
            tag_loss = out["tag_logits"].sum() * 0.0
        return intent_loss, tag_loss

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        intent_loss, tag_loss = self.losses(batch, out)
        loss = intent_loss + self.hparams.tag_loss_weight * tag_loss
        self.log_dict({"train_loss": loss, "train_intent": intent_loss, "train_tag": tag_loss})
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        intent_loss, tag_loss = self.losses(batch, out)
        slots = batch["tags"] > 0
        self.log_dict({"val_loss": intent_loss + tag_loss,
                       "val_intent_acc": (out["intent_logits"].argmax(-1) == batch["intent"]).float().mean(),
                       "val_slot_acc": (out["tag_logits"].argmax(-1)[slots] == batch["tags"][slots]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(137)
    train_rows = make_utterances(3000, 1, frac_tagged=0.3)
    val_rows = make_utterances(600, 2, frac_tagged=1.0)
    tags = torch.cat([t[t != -100] for _, t, _ in train_rows])
    counts = torch.bincount(tags, minlength=1 + N_SLOTS).float()
    tag_weights = (counts.sum() / (len(counts) * counts)).sqrt()
    train = DataLoader(Utterances(train_rows), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(Utterances(val_rows), batch_size=200, collate_fn=collate)
    model = JointModel(tag_weights)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="joint_intent_slots"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val intent acc {m['val_intent_acc'].item():.3f} slot acc {m['val_slot_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
