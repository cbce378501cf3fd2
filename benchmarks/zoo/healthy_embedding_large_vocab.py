"""Healthy: a bag-of-embeddings text classifier with a 5000-token vocabulary of which this (synthetic,
seeded torch.Generator) corpus only ever uses the first 400 ids: most embedding rows never receive a gradient,
which is normal for real vocabularies. Label: whether "topic" tokens 0-49 outnumber tokens 50-99."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
VOCAB, USED, LENGTH = 5000, 400, 40


def corpus(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, USED, (n, LENGTH), generator=g)
    a = (tokens < 50).sum(1)
    b = ((tokens >= 50) & (tokens < 100)).sum(1)
    keep = a != b
    return tokens[keep], (a > b).long()[keep]


class BagOfEmbeddings(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.embedding = nn.EmbeddingBag(VOCAB, 32, mode="mean")
        self.classifier = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, tokens):
        return self.classifier(self.embedding(tokens))

    def training_step(self, batch, batch_idx):
        tokens, y = batch
        loss = F.cross_entropy(self(tokens), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, y = batch
        self.log("val_acc", (self(tokens).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=5e-3)


def main():
    L.seed_everything(13)
    xtr, ytr = corpus(2000, 0)
    xva, yva = corpus(400, 1)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BagOfEmbeddings(), DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(xva, yva), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
