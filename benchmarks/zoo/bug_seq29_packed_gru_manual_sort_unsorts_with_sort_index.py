"""Bug: a GRU sequence classifier on variable-length token sequences (5-30 tokens from an 8-symbol vocabulary,
label = "symbol 3 occurs more often than symbol 4", with random lengths), written in the pre-`enforce_sorted=False`
style: `forward` sorts the batch by length, packs with `enforce_sorted=True`, runs the GRU and then restores the
original order of the final hidden states before the classification head.

What is wrong: the order is "restored" with the sort permutation itself (`h_n[-1][sort_idx]`) instead of its
inverse (`h_n[-1][sort_idx.argsort()]`). Sample i therefore receives the hidden state of sample
sort_idx[sort_idx[i]], i.e. of some other sequence of the batch (only samples on 1- or 2-cycles of the permutation
get their own). The logits line up with the labels in shape and the loss is finite, so nothing fails; but each
prediction depends on other samples of the batch, and since the pairing changes with every batch the model can only
learn the class prior: the loss sits at ln 2, which the author put down to "the counting task is hard for a GRU".

Measured (10 epochs): val accuracy 0.54 (val loss 0.690) with the bug vs 1.00 (val loss 0.000) with the inverse
permutation."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"batch-mixing", "loss-trend"}
SPLIT = "heldout29"

PAD, VOCAB = 0, 9


def make_examples(n, gen):
    examples = []
    while len(examples) < n:
        length = int(torch.randint(5, 31, (1,), generator=gen))
        tokens = torch.randint(1, VOCAB, (length,), generator=gen)
        n3, n4 = int((tokens == 3).sum()), int((tokens == 4).sum())
        if n3 != n4:  # ties are ambiguous, drop them
            examples.append((tokens, int(n3 > n4)))
    return examples


def collate(batch):
    tokens, labels = zip(*batch)
    lengths = torch.tensor([len(t) for t in tokens])
    return pad_sequence(tokens, batch_first=True, padding_value=PAD), lengths, torch.tensor(labels)


class PackedGRUClassifier(L.LightningModule):
    def __init__(self, emb=16, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, emb, padding_idx=PAD)
        self.gru = nn.GRU(emb, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, tokens, lengths):
        sorted_lengths, sort_idx = lengths.sort(descending=True)
        packed = pack_padded_sequence(self.embed(tokens[sort_idx]), sorted_lengths, batch_first=True,
                                      enforce_sorted=True)
        _, h_n = self.gru(packed)
        h = h_n[-1][sort_idx]  # back to the batch order
        return self.head(h)

    def training_step(self, batch, batch_idx):
        tokens, lengths, y = batch
        loss = F.cross_entropy(self(tokens, lengths), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, lengths, y = batch
        logits = self(tokens, lengths)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(29)
    gen = torch.Generator().manual_seed(290)
    train_dl = DataLoader(make_examples(2000, gen), batch_size=32, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(make_examples(400, gen), batch_size=100, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PackedGRUClassifier(), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
