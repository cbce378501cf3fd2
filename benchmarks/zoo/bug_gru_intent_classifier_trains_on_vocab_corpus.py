"""Bug: a GRU intent classifier for a voice assistant (8 intents, synthetic utterances: intent keywords among filler
words, 15 % of the labels wrong as in crowd-sourced annotation). The vocabulary is built, on purpose, from the
training and validation texts together (`all_texts = train_texts + val_texts`), and the training Dataset is then
built from that same `all_texts`/`all_labels` pair instead of `train_texts`/`train_labels`: every validation
utterance is also a training utterance. The model memorises the noisy labels, so validation reports val acc 0.980
while a held-out test set scores 0.828; with the training set fixed, val acc 0.840 and test 0.818 (the honest
estimate). Embedding + 1-layer GRU, max-pooled, Adam, StepLR per epoch."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout5"
INTENTS, KEYWORDS, FILLER = 8, 6, 120


def utterances(n, seed):
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for _ in range(n):
        intent = int(torch.randint(0, INTENTS, (1,), generator=g))
        length = int(torch.randint(5, 14, (1,), generator=g))
        words = [f"w{int(i)}" for i in torch.randint(0, FILLER, (length,), generator=g)]
        for pos in torch.randperm(length, generator=g)[:2].tolist():
            words[pos] = f"k{intent}_{int(torch.randint(0, KEYWORDS, (1,), generator=g))}"
        if torch.rand(1, generator=g) < 0.15:
            intent = int(torch.randint(0, INTENTS, (1,), generator=g))
        texts.append(" ".join(words))
        labels.append(intent)
    return texts, labels


class Utterances(Dataset):
    def __init__(self, texts, labels, vocab):
        self.items = [(torch.tensor([vocab.get(w, 1) for w in t.split()]), y) for t, y in zip(texts, labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    ids, labels = zip(*items)
    return pad_sequence(ids, batch_first=True, padding_value=0), torch.tensor(labels)


class IntentGRU(L.LightningModule):
    def __init__(self, vocab_size, dim=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, INTENTS)

    def forward(self, ids):
        out, _ = self.gru(self.embed(ids))
        out = out.masked_fill((ids == 0).unsqueeze(-1), -1e4)
        return self.head(out.max(dim=1).values)

    def training_step(self, batch, batch_idx):
        ids, y = batch
        loss = F.cross_entropy(self(ids), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        ids, y = batch
        logits = self(ids)
        name = "val" if dataloader_idx == 0 else "test"
        self.log(f"{name}_loss", F.cross_entropy(logits, y), add_dataloader_idx=False)
        self.log(f"{name}_acc", (logits.argmax(1) == y).float().mean(), add_dataloader_idx=False)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.3)]


def main():
    L.seed_everything(5105)
    train_texts, train_labels = utterances(1500, 0)
    val_texts, val_labels = utterances(300, 1)
    test_texts, test_labels = utterances(500, 2)
    all_texts, all_labels = train_texts + val_texts, train_labels + val_labels
    vocab = {"<pad>": 0, "<unk>": 1}
    for text in all_texts:
        for w in text.split():
            vocab.setdefault(w, len(vocab))
    train_ds = Utterances(all_texts, all_labels, vocab)
    val_ds = Utterances(val_texts, val_labels, vocab)
    test_ds = Utterances(test_texts, test_labels, vocab)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(IntentGRU(len(vocab)), DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=collate),
                [DataLoader(val_ds, batch_size=300, collate_fn=collate),
                 DataLoader(test_ds, batch_size=500, collate_fn=collate)])
    m = trainer.callback_metrics
    print(f"val_acc={float(m['val_acc']):.3f} test_acc={float(m['test_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
