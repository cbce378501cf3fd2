"""Bug: part-of-speech tagger (word embedding -> 2-layer BiLSTM -> tag head; dict batches `input_ids`/`labels`,
labels padded with -100). Sentences come from a hidden-Markov grammar over 7 tags; each tag emits its own words, some
words are shared between two tags and need context. As regularisation the user adds *word dropout*
(Kiperwasser & Goldberg 2016): each word is replaced by <unk> with probability 0.2, so that the tagger learns to use
the context and gets an embedding for unseen words. It is written at the top of `forward`, guarded by
`if self.word_dropout > 0:` - but not by `self.training`, unlike `nn.Dropout`, which checks the mode by itself. In
validation (and at inference) one word in five is still turned into <unk> at random: the predictions of the eval-mode
model change from one call to the next and lose the word identities.

Symptom: val token accuracy 0.82, and two eval-mode passes over the same batch disagree on 22 % of tokens, against
val accuracy 0.92 and identical passes with `if self.training and self.word_dropout > 0:`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout14"
N_TAGS, WORDS_PER_TAG, PAD, UNK = 7, 40, 0, 1


def make_grammar(seed=0):
    g = torch.Generator().manual_seed(seed)
    trans = (torch.randn(N_TAGS, N_TAGS, generator=g) * 1.2).softmax(-1)
    emit = torch.arange(N_TAGS * WORDS_PER_TAG).view(N_TAGS, WORDS_PER_TAG) + 2
    # a quarter of each tag's words are borrowed from the next tag: those words are ambiguous
    emit[:, :WORDS_PER_TAG // 4] = emit.roll(1, dims=0)[:, WORDS_PER_TAG // 4: WORDS_PER_TAG // 2]
    return trans, emit


class HMMSentences(Dataset):
    def __init__(self, n, seed, grammar):
        trans, emit = grammar
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(6, 21, (1,), generator=g))
            tags = [int(torch.randint(0, N_TAGS, (1,), generator=g))]
            for _ in range(length - 1):
                tags.append(int(torch.multinomial(trans[tags[-1]], 1, generator=g)))
            tags = torch.tensor(tags)
            words = emit[tags, torch.randint(0, WORDS_PER_TAG, (length,), generator=g)]
            self.items.append({"input_ids": words, "labels": tags})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    T = max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), T), PAD, dtype=torch.long)
    labels = torch.full((len(items), T), -100, dtype=torch.long)
    for i, it in enumerate(items):
        ids[i, :len(it["input_ids"])], labels[i, :len(it["labels"])] = it["input_ids"], it["labels"]
    return {"input_ids": ids, "labels": labels}


class BiLSTMTagger(L.LightningModule):
    def __init__(self, vocab_size, word_dropout=0.2, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.word_dropout = word_dropout
        self.embed = nn.Embedding(vocab_size, 64, padding_idx=PAD)
        self.lstm = nn.LSTM(64, 64, num_layers=2, batch_first=True, bidirectional=True, dropout=0.2)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(128, N_TAGS)

    def forward(self, input_ids):
        lengths = (input_ids != PAD).sum(1)
        if self.word_dropout > 0:
            drop = (torch.rand(input_ids.shape, device=input_ids.device) < self.word_dropout) & (input_ids > UNK)
            input_ids = input_ids.masked_fill(drop, UNK)
        x = nn.utils.rnn.pack_padded_sequence(self.drop(self.embed(input_ids)), lengths, batch_first=True,
                                              enforce_sorted=False)
        h, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(x)[0], batch_first=True, total_length=input_ids.size(1))
        return self.head(self.drop(h))

    def _loss(self, logits, labels):
        return F.cross_entropy(logits.reshape(-1, N_TAGS), labels.reshape(-1), ignore_index=-100)

    def training_step(self, batch, batch_idx):
        loss = self._loss(self(batch["input_ids"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"])
        valid = batch["labels"] != -100
        self.log("val_loss", self._loss(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(-1) == batch["labels"])[valid].float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": sched}


def main():
    L.seed_everything(6)
    grammar = make_grammar()
    train, val = HMMSentences(3000, 1, grammar), HMMSentences(600, 2, grammar)
    model = BiLSTMTagger(vocab_size=2 + N_TAGS * WORDS_PER_TAG)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="pos_tagger"), log_every_n_steps=10)
    val_loader = DataLoader(val, batch_size=200, collate_fn=collate)
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate), val_loader)

    model.eval()
    with torch.no_grad():
        batch = next(iter(val_loader))
        valid = batch["labels"] != -100
        p1, p2 = model(batch["input_ids"]).argmax(-1), model(batch["input_ids"]).argmax(-1)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"eval_pass_disagreement={(p1 != p2)[valid].float().mean().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
