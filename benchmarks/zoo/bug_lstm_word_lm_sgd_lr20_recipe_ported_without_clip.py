"""Bug: a 2-layer LSTM word language model in the style of PyTorch's `word_language_model` example (tied embeddings,
dropout 0.2, plain SGD at lr 20 with the learning rate divided by 4 when validation stops improving, BPTT windows of
35 tokens) on a synthetic corpus from a small stochastic grammar. The example relies on `--clip 0.25`, which in the
original loop is a `clip_grad_norm_` line between `backward()` and the update; when the loop was ported to a
LightningModule the line disappeared and nobody set `gradient_clip_val` on the Trainer. At lr 20 the first
gradient spike (global norm 1.6e8) throws the weights to huge values in the first epoch (largest weight 7e8 at the
end, from 0.1 at init; the loss stays finite) and the run never recovers; the plateau scheduler then cuts the lr to
0.3 without effect.
Symptom: val loss 1.95e6 (max gradient norm 1.6e8) vs val loss 2.70 / perplexity 14.9 (max gradient norm 0.8)
with `gradient_clip_val=0.25`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"exploding-gradient", "weight-growth"}
SPLIT = "heldout12"

BPTT = 35


def grammar_corpus(n_sentences, g):
    """Sentences DET ADJ* NOUN VERB (DET NOUN)? (PREP DET NOUN)? . from fixed word lists."""
    det, adj = ["the", "a", "every", "some"], [f"adj{i}" for i in range(12)]
    noun, verb = [f"noun{i}" for i in range(30)], [f"verb{i}" for i in range(20)]
    prep = ["in", "on", "with", "near"]
    # each verb prefers a few nouns as objects: a learnable dependency
    pref = torch.randint(0, len(noun), (len(verb), 3), generator=g)

    def pick(xs):
        return xs[int(torch.randint(len(xs), (1,), generator=g))]

    words = []
    for _ in range(n_sentences):
        words.append(pick(det))
        while float(torch.rand(1, generator=g)) < 0.3:
            words.append(pick(adj))
        words.append(pick(noun))
        v = int(torch.randint(len(verb), (1,), generator=g))
        words.append(verb[v])
        if float(torch.rand(1, generator=g)) < 0.7:
            words += [pick(det), noun[int(pref[v, int(torch.randint(3, (1,), generator=g))])]]
        if float(torch.rand(1, generator=g)) < 0.4:
            words += [pick(prep), pick(det), pick(noun)]
        words.append(".")
    return words


def windows(stream):
    n = (len(stream) - 1) // BPTT
    x = stream[: n * BPTT].view(n, BPTT)
    y = stream[1: n * BPTT + 1].view(n, BPTT)
    return TensorDataset(x, y)


class LSTMWordLM(L.LightningModule):
    def __init__(self, ntoken, d=200, lr=20.0):
        super().__init__()
        self.save_hyperparameters()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(ntoken, d)
        self.rnn = nn.LSTM(d, d, num_layers=2, dropout=0.2, batch_first=True)
        self.decoder = nn.Linear(d, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x):
        h, _ = self.rnn(self.drop(self.encoder(x)))
        return self.decoder(self.drop(h))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).reshape(-1, self.hparams.ntoken), y.reshape(-1))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x).reshape(-1, self.hparams.ntoken), y.reshape(-1)))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.25, patience=0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


class GradNormTracker(L.Callback):
    def __init__(self):
        self.max_norm = 0.0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        norms = [p.grad.norm() for p in pl_module.parameters() if p.grad is not None]
        self.max_norm = max(self.max_norm, float(torch.stack(norms).norm()))


def main():
    L.seed_everything(20)
    g = torch.Generator().manual_seed(20)
    train_words, val_words = grammar_corpus(9000, g), grammar_corpus(1200, g)
    vocab = {w: i for i, w in enumerate(sorted(set(train_words)))}
    train = windows(torch.tensor([vocab[w] for w in train_words]))
    val = windows(torch.tensor([vocab[w] for w in val_words]))

    model = LSTMWordLM(len(vocab))
    tracker = GradNormTracker()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[*lightning_sanity.default_callbacks(), tracker])
    trainer.fit(model, DataLoader(train, batch_size=20, shuffle=True), DataLoader(val, batch_size=100))
    print(f"SYMPTOM max_grad_norm={tracker.max_norm:.1f}")
    val_loss = float(trainer.callback_metrics["val_loss"])
    print(f"SYMPTOM val_loss={val_loss:.4g} val_ppl={math.exp(min(val_loss, 700.0)):.4g}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
