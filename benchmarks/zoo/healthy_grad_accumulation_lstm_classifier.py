"""Healthy: an LSTM sequence classifier with small batches (8) and `accumulate_grad_batches=4` (effective batch
32), gradient clipping by norm; label = most frequent residue class (token mod 3). AdamW."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
VOCAB, SEQ, CLASSES = 30, 20, 3


def sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    counts = torch.stack([(tokens % CLASSES == k).sum(1) for k in range(CLASSES)], dim=1)
    return tokens, (counts + 0.1 * torch.arange(CLASSES)).argmax(1)  # ties go to the larger class


class SequenceClassifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.rnn = nn.LSTM(32, 64, batch_first=True)
        self.head = nn.Linear(64, CLASSES)

    def forward(self, tokens):
        _, (h, _) = self.rnn(self.embed(tokens))
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
        return torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=0.01)


def main():
    L.seed_everything(2002)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, accumulate_grad_batches=4, gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SequenceClassifier(), DataLoader(TensorDataset(*sequences(1200, 0)), batch_size=8, shuffle=True),
                DataLoader(TensorDataset(*sequences(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
