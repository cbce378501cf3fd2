"""Healthy: a part-of-speech-style tagger in the Lample/Ma-Hovy mould: every word is represented by a word embedding
(with an [UNK] row for words outside the training vocabulary) concatenated with a character CNN + max-pool over its
letters; a word-level BiGRU and a linear tag head follow. Batches are doubly padded (`char_ids` of shape
(batch, words, chars) padded on both axes, `labels` -100 on padded words); the char max-pool masks padding
characters. Tags depend on suffixes, capitalisation and the previous word, and a third of the validation words never
occur in training, so the character path carries them. Word dropout (replace by [UNK] with p=0.1) during training,
accumulate_grad_batches=2, StepLR. Final: val token accuracy 0.96, on out-of-vocabulary words 0.85."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
LETTERS = "abcdefghijklmnoprstuvwy"
SUFFIX = {"ing": 1, "ed": 1, "ly": 2, "ous": 3, "ful": 3, "ness": 4, "tion": 4}
TAGS = ["OTHER", "VERB", "ADV", "ADJ", "NOUN", "PROPN", "DET"]
DETS = ["the", "a", "an", "this"]
PAD_W, UNK_W, PAD_C = 0, 1, 0


def make_lexicon(n, seed):
    g = torch.Generator().manual_seed(seed)
    words = []
    sufs = list(SUFFIX) + [""] * 4
    for _ in range(n):
        stem = "".join(LETTERS[int(i)] for i in torch.randint(0, len(LETTERS), (int(torch.randint(3, 7, (1,), generator=g)),), generator=g))
        w = stem + sufs[int(torch.randint(0, len(sufs), (1,), generator=g))]
        if float(torch.rand(1, generator=g)) < 0.15:
            w = w.capitalize()
        words.append(w)
    return words


def tag_of(word, prev):
    if word in DETS:
        return 6
    if word[0].isupper():
        return 5
    for s, t in SUFFIX.items():
        if word.endswith(s):
            return t
    return 4 if prev in DETS else 0


def make_sentences(lexicon, n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        words, prev = [], None
        for _ in range(int(torch.randint(5, 16, (1,), generator=g))):
            if float(torch.rand(1, generator=g)) < 0.2:
                w = DETS[int(torch.randint(0, len(DETS), (1,), generator=g))]
            else:
                w = lexicon[int(torch.randint(0, len(lexicon), (1,), generator=g))]
            words.append((w, tag_of(w, prev)))
            prev = w
        out.append(words)
    return out


class Sentences(Dataset):
    def __init__(self, sents, word_vocab, char_vocab):
        self.sents, self.word_vocab, self.char_vocab = sents, word_vocab, char_vocab

    def __len__(self):
        return len(self.sents)

    def __getitem__(self, i):
        words = [w for w, _ in self.sents[i]]
        return {"word_ids": torch.tensor([self.word_vocab.get(w, UNK_W) for w in words]),
                "chars": [torch.tensor([self.char_vocab[c] for c in w]) for w in words],
                "labels": torch.tensor([t for _, t in self.sents[i]])}


def collate(items):
    n_words = max(len(it["word_ids"]) for it in items)
    n_chars = max(len(c) for it in items for c in it["chars"])
    char_ids = torch.full((len(items), n_words, n_chars), PAD_C)
    for b, it in enumerate(items):
        for j, c in enumerate(it["chars"]):
            char_ids[b, j, : len(c)] = c
    word_ids = nn.utils.rnn.pad_sequence([it["word_ids"] for it in items], batch_first=True, padding_value=PAD_W)
    labels = nn.utils.rnn.pad_sequence([it["labels"] for it in items], batch_first=True, padding_value=-100)
    return {"word_ids": word_ids, "char_ids": char_ids, "labels": labels}


class CharWordTagger(L.LightningModule):
    def __init__(self, n_words, n_chars, dw=48, dc=24, hidden=64, lr=3e-3, word_dropout=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.word_emb = nn.Embedding(n_words, dw, padding_idx=PAD_W)
        self.char_emb = nn.Embedding(n_chars, dc, padding_idx=PAD_C)
        self.char_cnn = nn.Conv1d(dc, 2 * dc, 3, padding=1)
        self.gru = nn.GRU(dw + 2 * dc, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, len(TAGS))

    def forward(self, word_ids, char_ids, **_):
        b, w, c = char_ids.shape
        if self.training:
            drop = (torch.rand(word_ids.shape, device=word_ids.device) < self.hparams.word_dropout) & (word_ids != PAD_W)
            word_ids = word_ids.masked_fill(drop, UNK_W)
        ch = self.char_emb(char_ids.view(b * w, c)).transpose(1, 2)
        ch = F.relu(self.char_cnn(ch)).masked_fill((char_ids.view(b * w, 1, c) == PAD_C), -1e4)
        ch = ch.max(-1).values.clamp_min(0).view(b, w, -1)
        h, _ = self.gru(torch.cat([self.word_emb(word_ids), ch], -1))
        return self.out(h)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(**batch).transpose(1, 2), batch["labels"], ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(**batch)
        keep = batch["labels"] != -100
        oov = keep & (batch["word_ids"] == UNK_W)
        pred = logits.argmax(-1)
        self.log("val_loss", F.cross_entropy(logits.transpose(1, 2), batch["labels"], ignore_index=-100))
        self.log("val_acc", (pred[keep] == batch["labels"][keep]).float().mean(), prog_bar=True)
        self.log("val_oov_acc", (pred[oov] == batch["labels"][oov]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.3)]


def main():
    L.seed_everything(151)
    lexicon = make_lexicon(900, 4)
    train_lex, oov_lex = lexicon[:600], lexicon[600:]
    train_s = make_sentences(train_lex, 2500, 1)
    val_s = make_sentences(train_lex[:300] + oov_lex[:150], 500, 2)
    word_vocab = {w: i + 2 for i, w in enumerate(sorted({w for s in train_s for w, _ in s}))}
    char_vocab = {c: i + 1 for i, c in enumerate(sorted(set(LETTERS + LETTERS.upper())))}
    train = DataLoader(Sentences(train_s, word_vocab, char_vocab), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(Sentences(val_s, word_vocab, char_vocab), batch_size=250, collate_fn=collate)
    model = CharWordTagger(len(word_vocab) + 2, len(char_vocab) + 1)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        accumulate_grad_batches=2, logger=TensorBoardLogger("lightning_logs", name="char_word_tagger"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val acc {m['val_acc'].item():.3f} oov acc {m['val_oov_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
