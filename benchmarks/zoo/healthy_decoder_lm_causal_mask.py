"""Healthy: a GPT-style language model on `nn.TransformerEncoder` with its causal mask (`is_causal=True`), so
each position sees only the tokens up to itself. Next-token cross-entropy on synthetic counting sequences, AdamW."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
VOCAB, SEQ = 50, 32


def counting_sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    step = torch.randint(1, 5, (n, 1), generator=g)
    return (start + step * torch.arange(SEQ + 1)) % VOCAB


class TinyGPT(L.LightningModule):
    def __init__(self, dim=64):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, dim)
        self.pos = nn.Embedding(SEQ, dim)
        layer = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(dim, VOCAB)

    def forward(self, ids):
        h = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1], device=ids.device)
        return self.head(self.blocks(h, mask=mask, is_causal=True))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).transpose(1, 2), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x).transpose(1, 2), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)


def main():
    L.seed_everything(42)
    train, val = counting_sequences(512, 0), counting_sequences(128, 1)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TinyGPT(), DataLoader(TensorDataset(train[:, :-1], train[:, 1:]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val[:, :-1], val[:, 1:]), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
