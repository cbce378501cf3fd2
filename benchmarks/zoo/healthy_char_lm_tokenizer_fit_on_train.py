"""Healthy: a character-level GRU language model with its own tokenizer: a character vocabulary ordered by
frequency (special tokens <pad>=0, <unk>, </s> first) is fitted on the training texts and reused for validation
(unseen characters map to <unk>). Texts are 5-20 letters from a noisy Markov chain (best next-letter loss about
1.2 nats), padded per batch with id 0, which the loss ignores (`ignore_index=0`). Tuple batches (x = ids[:-1],
y = ids[1:]). SGD lr=1.0 with gradient clipping at 0.5, StepLR(step_size=3, gamma=0.5). Reaches train loss 1.29,
val loss 1.32 (uniform over 29 ids: 3.37)."""

from collections import Counter

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
PAD, UNK, EOS = "<pad>", "<unk>", "</s>"


def sentences(n, seed):
    """Strings of 5-20 letters from a noisy Markov chain over 26 letters."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randint(0, 26, (26, 2), generator=torch.Generator().manual_seed(9))
    out = []
    for _ in range(n):
        length = int(torch.randint(5, 21, (1,), generator=g))
        seq = [int(torch.randint(0, 26, (1,), generator=g))]
        for _ in range(length - 1):
            r = float(torch.rand(1, generator=g))
            nxt = table[seq[-1], 0] if r < 0.6 else table[seq[-1], 1] if r < 0.9 else torch.randint(0, 26, (1,), generator=g)
            seq.append(int(nxt))
        out.append("".join(LETTERS[i] for i in seq))
    return out


class CharTokenizer:
    """Ids by frequency, most frequent first, after the special tokens."""

    def __init__(self, texts):
        counts = Counter(ch for t in texts for ch in t)
        self.itos = [PAD, UNK, EOS] + [ch for ch, _ in counts.most_common()]
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def encode(self, text):
        return torch.tensor([self.stoi.get(ch, 1) for ch in text] + [self.stoi[EOS]])


def make_loader(tokenizer, texts, **kw):
    def collate(seqs):
        ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=0)
        return ids[:, :-1], ids[:, 1:]
    return DataLoader([tokenizer.encode(t) for t in texts], collate_fn=collate, **kw)


class CharLM(L.LightningModule):
    def __init__(self, vocab=29, dim=64, lr=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, vocab)

    def forward(self, x):
        return self.out(self.rnn(self.embed(x))[0])

    def _loss(self, batch):
        x, y = batch
        return F.cross_entropy(self(x).reshape(-1, self.hparams.vocab), y.reshape(-1), ignore_index=0)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)]


def main():
    L.seed_everything(2112)
    train_texts, val_texts = sentences(1500, 0), sentences(300, 1)
    tokenizer = CharTokenizer(train_texts)
    train = make_loader(tokenizer, train_texts, batch_size=32, shuffle=True)
    val = make_loader(tokenizer, val_texts, batch_size=300)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=0.5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CharLM(vocab=len(tokenizer.itos)), train, val)
    m = trainer.callback_metrics
    print(f"train_loss={float(m['train_loss']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
