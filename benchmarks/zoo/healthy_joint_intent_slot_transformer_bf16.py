"""Healthy: joint intent detection and slot filling for a voice assistant (multi-task: a [CLS] intent head and a
per-token BIO slot head on one small Transformer encoder with a key padding mask). Dict batches carry `input_ids`,
`attention_mask`, `intent` and `slot_labels`, where slot labels are -100 on [CLS] and padding; the two
cross-entropies are summed with a 0.5 weight on intent. Some filler words are ambiguous ("may" is a date or an
artist, "paris" a city or an artist), so slots need context. `precision="bf16-mixed"` on CPU, AdamW, warm-up then
linear decay per step. Final val intent acc 1.00, slot token acc 1.00."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
INTENTS = ["book_flight", "weather", "play_music", "set_alarm"]
SLOTS = ["O", "B-city", "I-city", "B-date", "B-artist", "I-artist", "B-time"]
CITIES = ["paris", "lima", "oslo", "new york", "san diego", "cairo", "tokyo"]
DATES = ["today", "tomorrow", "monday", "friday", "may", "june"]
ARTISTS = ["adele", "may", "paris", "daft punk", "the cure", "nina simone", "queen"]
TIMES = ["six", "seven", "noon", "midnight", "eight"]
TEMPLATES = {
    "book_flight": [["book", "a", "flight", "to", "{city}", "{date}"], ["fly", "me", "to", "{city}", "on", "{date}"]],
    "weather": [["what", "is", "the", "weather", "in", "{city}", "{date}"], ["will", "it", "rain", "in", "{city}"]],
    "play_music": [["play", "something", "by", "{artist}"], ["put", "on", "{artist}", "please"]],
    "set_alarm": [["wake", "me", "at", "{time}", "{date}"], ["set", "an", "alarm", "for", "{time}"]],
}
FILLS = {"{city}": ("city", CITIES), "{date}": ("date", DATES), "{artist}": ("artist", ARTISTS),
         "{time}": ("time", TIMES)}
WORDS = sorted({w for ts in TEMPLATES.values() for t in ts for w in t if not w.startswith("{")}
               | {w for xs in (CITIES, DATES, ARTISTS, TIMES) for x in xs for w in x.split()})
VOCAB = {w: i + 2 for i, w in enumerate(WORDS)}  # 0 pad, 1 [CLS]


def utterances(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        intent = int(torch.randint(len(INTENTS), (1,), generator=g))
        temps = TEMPLATES[INTENTS[intent]]
        words, slots = [], []
        for tok in temps[int(torch.randint(len(temps), (1,), generator=g))]:
            if tok in FILLS:
                name, values = FILLS[tok]
                value = values[int(torch.randint(len(values), (1,), generator=g))].split()
                words += value
                slots += [f"B-{name}"] + [f"I-{name}"] * (len(value) - 1)
            else:
                words.append(tok)
                slots.append("O")
        ids = torch.tensor([1] + [VOCAB[w] for w in words])
        slot_ids = torch.tensor([-100] + [SLOTS.index(s) for s in slots])
        out.append((ids, intent, slot_ids))
    return out


def collate(items):
    ids = pad_sequence([i for i, _, _ in items], batch_first=True)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(),
            "intent": torch.tensor([y for _, y, _ in items]),
            "slot_labels": pad_sequence([s for _, _, s in items], batch_first=True, padding_value=-100)}


class JointModel(L.LightningModule):
    def __init__(self, d=64, lr=2e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.tok, self.pos = nn.Embedding(len(VOCAB) + 2, d, padding_idx=0), nn.Embedding(16, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.intent_head = nn.Linear(d, len(INTENTS))
        self.slot_head = nn.Linear(d, len(SLOTS))

    def forward(self, input_ids, attention_mask, **_):
        T = input_ids.shape[1]
        h = self.encoder(self.tok(input_ids) + self.pos.weight[:T], src_key_padding_mask=attention_mask == 0)
        h = self.norm(h)
        return self.intent_head(h[:, 0]), self.slot_head(h)

    def losses(self, batch):
        intent_logits, slot_logits = self(**batch)
        intent_loss = F.cross_entropy(intent_logits.float(), batch["intent"])
        slot_loss = F.cross_entropy(slot_logits.float().transpose(1, 2), batch["slot_labels"], ignore_index=-100)
        return intent_loss, slot_loss, intent_logits, slot_logits

    def training_step(self, batch, batch_idx):
        intent_loss, slot_loss, _, _ = self.losses(batch)
        loss = 0.5 * intent_loss + slot_loss
        self.log_dict({"train_loss": loss, "train_intent_loss": intent_loss, "train_slot_loss": slot_loss})
        return loss

    def validation_step(self, batch, batch_idx):
        intent_loss, slot_loss, il, sl = self.losses(batch)
        keep = batch["slot_labels"] != -100
        self.log_dict({"val_loss": 0.5 * intent_loss + slot_loss,
                       "val_intent_acc": (il.argmax(-1) == batch["intent"]).float().mean(),
                       "val_slot_acc": (sl.argmax(-1) == batch["slot_labels"])[keep].float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(55)
    model = JointModel()
    trainer = L.Trainer(
        max_epochs=5,
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(utterances(2000, 1), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(utterances(400, 2), batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_intent_acc={m['val_intent_acc'].item():.3f} val_slot_acc={m['val_slot_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
