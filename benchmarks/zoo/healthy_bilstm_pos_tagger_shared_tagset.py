"""Healthy: a BiLSTM part-of-speech tagger on a synthetic tagged corpus. Sentences come from an HMM over 7 tags (DET
ADJ NOUN VERB ADP ADV PRON); each tag has its own words, and a block of ambiguous words can be NOUN or VERB, so the
tagger must read the context. Tags are strings in the corpus; the tag vocabulary is built once on the training split
and handed to the validation dataset. Variable-length sentences padded in a collate function, padding labelled -100
(ignored), `pack_padded_sequence`, Adam, `accumulate_grad_batches=2`. Reaches val token accuracy 0.995."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout5"
TAGS = ["DET", "ADJ", "NOUN", "VERB", "ADP", "ADV", "PRON"]
START = torch.tensor([0.45, 0.15, 0.05, 0.0, 0.05, 0.05, 0.25])
TRANS = torch.tensor([  # rows: from tag, columns: to tag (plus a last column: end of sentence)
    [0.0, 0.35, 0.65, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.15, 0.85, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.05, 0.45, 0.25, 0.05, 0.0, 0.2],
    [0.4, 0.05, 0.05, 0.0, 0.2, 0.15, 0.1, 0.05],
    [0.7, 0.1, 0.1, 0.0, 0.0, 0.0, 0.1, 0.0],
    [0.1, 0.1, 0.0, 0.3, 0.2, 0.0, 0.0, 0.3],
    [0.0, 0.0, 0.0, 0.9, 0.0, 0.1, 0.0, 0.0]])
WORDS_PER_TAG, AMBIGUOUS, PAD = 30, 40, 0
VOCAB = 1 + len(TAGS) * WORDS_PER_TAG + AMBIGUOUS


def corpus(n, seed):
    g = torch.Generator().manual_seed(seed)
    sents, tags = [], []
    for _ in range(n):
        tag = int(torch.multinomial(START, 1, generator=g))
        words, labels = [], []
        while True:
            if tag in (2, 3) and torch.rand(1, generator=g) < 0.35:  # an ambiguous noun/verb word
                words.append(1 + len(TAGS) * WORDS_PER_TAG + int(torch.randint(0, AMBIGUOUS, (1,), generator=g)))
            else:
                words.append(1 + tag * WORDS_PER_TAG + int(torch.randint(0, WORDS_PER_TAG, (1,), generator=g)))
            labels.append(TAGS[tag])
            nxt = int(torch.multinomial(TRANS[tag], 1, generator=g))
            if nxt == len(TAGS) or len(words) >= 25:
                break
            tag = nxt
        if len(words) >= 3:
            sents.append(words)
            tags.append(labels)
    return sents, tags


class TaggedSentences(Dataset):
    def __init__(self, sents, tags, tag2id=None):
        # tag ids: in order of first appearance in the corpus
        self.tag2id = tag2id or {t: i for i, t in enumerate(dict.fromkeys(t for s in tags for t in s))}
        self.items = [(torch.tensor(w), torch.tensor([self.tag2id[t] for t in ts])) for w, ts in zip(sents, tags)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    words, tags = zip(*items)
    lengths = torch.tensor([len(w) for w in words])
    return pad_sequence(words, True, PAD), lengths, pad_sequence(tags, True, -100)


class BiLSTMTagger(L.LightningModule):
    def __init__(self, dim=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(2 * dim, len(TAGS))

    def forward(self, words, lengths):
        packed = pack_padded_sequence(self.drop(self.embed(words)), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        return self.head(self.drop(out))

    def _step(self, batch):
        words, lengths, tags = batch
        logits = self(words, lengths)
        loss = F.cross_entropy(logits.reshape(-1, len(TAGS)), tags.reshape(-1), ignore_index=-100)
        keep = tags != -100
        acc = (logits.argmax(-1)[keep] == tags[keep]).float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_acc", acc)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5103)
    train_ds = TaggedSentences(*corpus(2400, 0))
    val_ds = TaggedSentences(*corpus(400, 1), tag2id=train_ds.tag2id)
    trainer = L.Trainer(max_epochs=6, accumulate_grad_batches=2, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BiLSTMTagger(), DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val_ds, batch_size=200, collate_fn=collate))
    print(f"val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"tag maps equal: {train_ds.tag2id == val_ds.tag2id}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
