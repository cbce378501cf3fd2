"""Healthy: a small LSTM language model with weight tying (the output projection shares the embedding matrix,
Press & Wolf 2017) on synthetic token streams from a random Markov chain (seeded torch.Generator). Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
VOCAB, SEQ = 50, 32


def markov_streams(n, seed):
    g = torch.Generator().manual_seed(seed)
    trans = torch.softmax(3 * torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(123)), dim=1)
    seqs = torch.empty(n, SEQ + 1, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for t in range(SEQ):
        seqs[:, t + 1] = torch.multinomial(trans[seqs[:, t]], 1, generator=g).squeeze(1)
    return seqs[:, :-1], seqs[:, 1:]


class TiedLM(L.LightningModule):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.decoder = nn.Linear(dim, VOCAB)
        self.decoder.weight = self.embed.weight  # weight tying

    def forward(self, tokens):
        h, _ = self.lstm(self.embed(tokens))
        return self.decoder(h)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = F.cross_entropy(self(inputs).reshape(-1, VOCAB), targets.reshape(-1))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        inputs, targets = batch
        self.log("val_loss", F.cross_entropy(self(inputs).reshape(-1, VOCAB), targets.reshape(-1)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(103)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TiedLM(), DataLoader(TensorDataset(*markov_streams(1024, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*markov_streams(128, 1)), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
