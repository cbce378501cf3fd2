"""Bug: a Transformer encoder tags every token with the topic of its sentence, trained on *packed* rows: short sentences
are concatenated into rows of 48 tokens (less padding), position ids restart at every sentence, and a block-diagonal
attention mask keeps each token inside its own sentence. The mask is per row, shape (B, T, T), while
`nn.TransformerEncoder` wants a 3-D mask of shape (B * num_heads, T, T) ordered batch-major (row b*H + h is head h of
sample b). The user expands it with `mask.repeat(num_heads, 1, 1)` - the natural reading of "repeat it for every head"
- which orders it head-major: head h of sample b gets the block mask of sample (b*H + h) mod B. Most heads of a row
attend across sentence boundaries and are blocked inside their own sentence, with boundaries taken from other rows of
the batch: a row's output depends on how its batch-mates were packed. Nothing errors - the shapes are right.

Symptom: val token accuracy 0.86 vs 1.00 with `mask.repeat_interleave(num_heads, dim=0)`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout14"
N_TOPICS, KEYWORDS_PER_TOPIC, VOCAB, PAD, ROW = 4, 3, 64, 0, 48
FIRST_FILLER = 1 + N_TOPICS * KEYWORDS_PER_TOPIC


def make_sentences(n, seed):
    """Filler tokens with one topic keyword at a random place; every token is labelled with the topic."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(5, 13, (1,), generator=g))
        topic = int(torch.randint(0, N_TOPICS, (1,), generator=g))
        ids = torch.randint(FIRST_FILLER, VOCAB, (length,), generator=g)
        kw = 1 + topic * KEYWORDS_PER_TOPIC + int(torch.randint(0, KEYWORDS_PER_TOPIC, (1,), generator=g))
        ids[int(torch.randint(0, length, (1,), generator=g))] = kw
        out.append((ids, topic))
    return out


def pack(sentences):
    """Greedy packing into rows of ROW tokens: input_ids, position_ids (restart per sentence), segment_ids, labels."""
    rows, cur = [], []
    for ids, topic in sentences:
        if sum(len(s) for s, _ in cur) + len(ids) > ROW:
            rows.append(cur)
            cur = []
        cur.append((ids, topic))
    rows.append(cur)
    packed = []
    for row in rows:
        input_ids = torch.full((ROW,), PAD, dtype=torch.long)
        position_ids = torch.zeros(ROW, dtype=torch.long)
        segment_ids = torch.full((ROW,), -1, dtype=torch.long)
        labels = torch.full((ROW,), -100, dtype=torch.long)
        t = 0
        for seg, (ids, topic) in enumerate(row):
            n = len(ids)
            input_ids[t:t + n], position_ids[t:t + n] = ids, torch.arange(n)
            segment_ids[t:t + n], labels[t:t + n] = seg, topic
            t += n
        packed.append({"input_ids": input_ids, "position_ids": position_ids, "segment_ids": segment_ids,
                       "labels": labels})
    return packed


class PackedTopicTagger(L.LightningModule):
    def __init__(self, d=64, n_heads=4, n_layers=2, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.n_heads = n_heads
        self.tok = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(ROW, d)
        layer = nn.TransformerEncoderLayer(d, n_heads, dim_feedforward=4 * d, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, N_TOPICS)

    def forward(self, input_ids, position_ids, segment_ids):
        x = self.tok(input_ids) + self.pos(position_ids)
        # block-diagonal: a token may attend only to tokens of its own sentence (padding attends to padding)
        blocked = segment_ids[:, :, None] != segment_ids[:, None, :]
        mask = blocked.repeat(self.n_heads, 1, 1)
        return self.head(self.encoder(x, mask=mask))

    def _step(self, batch):
        logits = self(batch["input_ids"], batch["position_ids"], batch["segment_ids"])
        loss = F.cross_entropy(logits.reshape(-1, N_TOPICS), batch["labels"].reshape(-1), ignore_index=-100)
        valid = batch["labels"] != -100
        acc = (logits.argmax(-1) == batch["labels"])[valid].float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_acc", acc)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(8)
    train, val = pack(make_sentences(6000, seed=1)), pack(make_sentences(1000, seed=2))
    model = PackedTopicTagger()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="packed_tagger"), log_every_n_steps=10)
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=64))
    print(f"SYMPTOM val_token_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
