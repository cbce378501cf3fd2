"""Bug: a plain tanh `nn.RNN` over 60-step sequences whose recurrent weights are initialised "to help memory" with
an orthogonal matrix scaled by 3 (spectral radius 3), trained with SGD lr=0.1 and no gradient clipping:
backpropagation through time multiplies the gradient by up to 3 per step and the gradient norms explode. The
class is the first token of the sequence."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"exploding-gradient", "non-finite"}
SPLIT = "heldout"
VOCAB, SEQ, CLASSES = 20, 60, 4


def sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(CLASSES, VOCAB, (n, SEQ), generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    tokens[:, 0] = y  # the class is the first token; the rest is noise the network must carry it through
    return tokens, y


class SequenceClassifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.rnn = nn.RNN(32, 64, batch_first=True)
        nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=3.0)  # BUG: spectral radius 3 -> exploding BPTT
        self.head = nn.Linear(64, CLASSES)

    def forward(self, tokens):
        _, h = self.rnn(self.embed(tokens))
        return self.head(h[-1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main():
    L.seed_everything(2011)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SequenceClassifier(), DataLoader(TensorDataset(*sequences(1500, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*sequences(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
