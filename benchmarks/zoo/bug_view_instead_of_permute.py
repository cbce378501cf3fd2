"""Bug: an LSTM with batch_first=False gets its (B, T, F) input reshaped with `.view(T, B, F)` instead of
`.permute(1, 0, 2)`, which interleaves time steps of different samples: each sample's output depends on the
other samples in the batch. Synthetic wave classification (seeded torch.Generator)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}


def make_waves(n, length=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    freq = torch.where(labels == 0, 0.6, 1.4).unsqueeze(1) + 0.2 * torch.rand(n, 1, generator=g)
    t = torch.linspace(0, 4 * math.pi, length)
    x = torch.sin(freq * t + 2 * math.pi * torch.rand(n, 1, generator=g)) + 0.1 * torch.randn(n, length, generator=g)
    return x.unsqueeze(-1), labels


class SeqClassifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 32)  # expects (T, B, F)
        self.fc = nn.Linear(32, 2)

    def forward(self, x):
        b, t, f = x.shape
        x = x.view(t, b, f)  # BUG: should be x.permute(1, 0, 2)
        out, _ = self.lstm(x)
        return self.fc(out[-1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(2)
    xtr, ytr = make_waves(768, seed=0)
    xva, yva = make_waves(128, seed=1)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SeqClassifier(), DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xva, yva), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
