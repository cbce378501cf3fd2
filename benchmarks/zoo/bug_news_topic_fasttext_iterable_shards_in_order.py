"""Bug: a fastText-style news topic classifier (EmbeddingBag mean of word + bigram-hash embeddings, linear head)
trained from a streaming IterableDataset that reads the corpus shard by shard, as exported: one shard per topic
(6 topics x 600 articles), in order, through a 256-article shuffle buffer that the author thought would mix them.
The buffer is far smaller than a shard, so each stretch of training sees a single topic and every batch holds one
class; the model ends each epoch predicting the last shard's topics. Adam, StepLR per epoch. Measured: val acc
0.50 (6 classes) vs 0.83 when the shards are interleaved round-robin before the shuffle buffer."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout7"
N_TOPICS, VOCAB, BUCKETS = 6, 400, 2048


def make_articles(n_per_topic, seed):
    """Each topic has its own 30 characteristic words (ids 200 + 30 * topic ...) mixed into common words (1-199)."""
    g = torch.Generator().manual_seed(seed)
    shards = []
    for topic in range(N_TOPICS):
        shard = []
        for _ in range(n_per_topic):
            length = int(torch.randint(20, 40, (1,), generator=g))
            words = torch.randint(1, 200, (length,), generator=g)
            own = torch.rand(length, generator=g) < 0.15
            words[own] = 200 + 30 * topic + torch.randint(0, 30, (int(own.sum()),), generator=g)
            confusable = torch.rand(length, generator=g) < 0.08  # words of other topics too
            words[confusable] = torch.randint(200, 380, (int(confusable.sum()),), generator=g)
            shard.append((words, topic))
        shards.append(shard)
    return shards


def with_bigrams(words):
    bigrams = VOCAB + (words[:-1] * 7919 + words[1:]) % BUCKETS
    return torch.cat([words, bigrams])


class ShardStream(IterableDataset):
    def __init__(self, shards, buffer_size=256, seed=0):
        self.shards, self.buffer_size, self.seed, self.epoch = shards, buffer_size, seed, 0

    def read_shards(self):
        for shard in self.shards:
            yield from shard

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        buf = []
        for item in self.read_shards():
            buf.append(item)
            if len(buf) >= self.buffer_size:
                yield buf.pop(int(torch.randint(0, len(buf), (1,), generator=g)))
        while buf:
            yield buf.pop(int(torch.randint(0, len(buf), (1,), generator=g)))


def collate(items):
    seqs = [with_bigrams(w) for w, _ in items]
    offsets = torch.tensor([0] + [len(s) for s in seqs[:-1]]).cumsum(0)
    return torch.cat(seqs), offsets, torch.tensor([y for _, y in items])


class FastText(L.LightningModule):
    def __init__(self, dim=32, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.bag = nn.EmbeddingBag(VOCAB + BUCKETS, dim, mode="mean")
        self.head = nn.Linear(dim, N_TOPICS)

    def forward(self, tokens, offsets):
        return self.head(self.bag(tokens, offsets))

    def training_step(self, batch, batch_idx):
        tokens, offsets, y = batch
        loss = F.cross_entropy(self(tokens, offsets), y)
        self.log("train_loss", loss, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, offsets, y = batch
        logits = self(tokens, offsets)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), batch_size=len(y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)]


def main():
    L.seed_everything(7012)
    train = DataLoader(ShardStream(make_articles(600, 0)), batch_size=32, collate_fn=collate)
    val_items = [a for shard in make_articles(100, 1) for a in shard]
    val = DataLoader(val_items, batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FastText(), train, val)
    print(f"val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
