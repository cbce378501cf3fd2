"""Healthy: a GRU sequence classifier trained with `precision="bf16-mixed"` on CPU; the label is the most
frequent residue class (token mod 3) in a random token sequence. Adam, gradient clipping at 1.0."""

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
        self.rnn = nn.GRU(32, 64, batch_first=True)
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
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(2001)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, precision="bf16-mixed", gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SequenceClassifier(), DataLoader(TensorDataset(*sequences(2000, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*sequences(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
