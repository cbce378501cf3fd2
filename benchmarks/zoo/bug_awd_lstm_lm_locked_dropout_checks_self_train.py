"""Bug: an AWD-LSTM-style word language model (tied embedding/softmax weights, LockedDropout - one dropout mask
shared across time steps - on the embeddings, between the LSTM layers and on the output; truncated BPTT over a
contiguous token stream with the hidden state carried and detached between batches). The LockedDropout guard reads
`if not self.train or not self.p` instead of `self.training`: `self.train` is a bound method, always truthy, so the
masks are applied in validation too and the model's eval predictions are random. Data: text from a synthetic
grammar (a 60-word Markov chain with sparse transitions). AdamW, cosine per epoch, gradient clipping 0.25.
Measured: val loss 2.16 (and it changes from one evaluation of the same batch to the next) vs 2.00 with
`self.training`; the grammar's entropy is 1.13 nats, uniform ln 60 = 4.09."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout7"
VOCAB, BPTT = 60, 35


def markov_text(n_tokens, seed):
    """Each word is followed by one of 4 words with fixed probabilities (the grammar is the same for all seeds)."""
    rules = torch.Generator().manual_seed(99)
    nxt = torch.stack([torch.randperm(VOCAB, generator=rules)[:4] for _ in range(VOCAB)])
    probs = torch.tensor([0.55, 0.25, 0.12, 0.08])
    g = torch.Generator().manual_seed(seed)
    choice = torch.multinomial(probs, n_tokens, replacement=True, generator=g)
    out = torch.empty(n_tokens, dtype=torch.long)
    w = 0
    for i in range(n_tokens):
        w = int(nxt[w, choice[i]])
        out[i] = w
    return out


class BPTTStream(Dataset):
    """batchify() as in the PyTorch word_language_model example: `batch_size` contiguous streams, cut in chunks."""

    def __init__(self, tokens, batch_size):
        n = tokens.numel() // batch_size
        self.data = tokens[: n * batch_size].view(batch_size, n)

    def __len__(self):
        return (self.data.shape[1] - 1) // BPTT

    def __getitem__(self, i):
        s = i * BPTT
        return self.data[:, s : s + BPTT], self.data[:, s + 1 : s + 1 + BPTT]


class LockedDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):  # x: batch, time, features
        if not self.train or not self.p:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


class AWDLSTM(L.LightningModule):
    def __init__(self, dim=96, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Embedding(VOCAB, dim)
        self.rnns = nn.ModuleList([nn.LSTM(dim, 2 * dim, batch_first=True), nn.LSTM(2 * dim, dim, batch_first=True)])
        self.drop_in, self.drop_hid, self.drop_out = LockedDropout(0.4), LockedDropout(0.25), LockedDropout(0.4)
        self.decoder = nn.Linear(dim, VOCAB)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        self.hidden = {"train": None, "val": None}

    def forward(self, x, hidden=None):
        hidden = hidden or [None] * len(self.rnns)
        h, new_hidden = self.drop_in(self.encoder(x)), []
        for i, rnn in enumerate(self.rnns):
            h, state = rnn(h, hidden[i])
            new_hidden.append(tuple(s.detach() for s in state))
            h = self.drop_hid(h) if i < len(self.rnns) - 1 else self.drop_out(h)
        return self.decoder(h), new_hidden

    def _step(self, batch, split):
        x, y = (t.squeeze(0) for t in batch)
        logits, self.hidden[split] = self(x, self.hidden[split])
        return F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))

    def on_train_epoch_start(self):
        self.hidden["train"] = None

    def on_validation_epoch_start(self):
        self.hidden["val"] = None

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._step(batch, "val"))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1.2e-6)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(7015)
    train = DataLoader(BPTTStream(markov_text(40000, 0), 32), batch_size=1)  # ordered: the streams are contiguous
    val = DataLoader(BPTTStream(markov_text(6000, 1), 16), batch_size=1)
    trainer = L.Trainer(max_epochs=6, gradient_clip_val=0.25, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AWDLSTM(), train, val)
    print(f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
