"""Healthy: a ReLU Elman RNN (``nn.RNN(nonlinearity="relu")``) reads 120-step sequences, trained with Adam and
``Trainer(gradient_clip_val=1.0)``: the gradient norm (read before clipping) still spikes in the first steps,
but clipping bounds every update, as it is meant to.
Task: classify whether the last 10 values of a noisy synthetic sequence sum to a positive number (seeded
torch.Generator)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


def make_sequences(n, length=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, 1, generator=g)
    y = (x[:, -10:].sum(dim=(1, 2)) > 0).long()
    return x, y


class SumRNN(L.LightningModule):
    def __init__(self, hidden=64, lr=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.rnn = nn.RNN(1, hidden, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.head(h[-1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(4)
    xtr, ytr = make_sequences(2048, seed=0)
    xva, yva = make_sequences(256, seed=1)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SumRNN(), DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(xva, yva), batch_size=256))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
