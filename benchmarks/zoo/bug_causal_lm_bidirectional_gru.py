"""Bug: a next-token language model built on `nn.GRU(..., bidirectional=True)` (switched on "for more capacity"):
the backward direction has already read every token after position t, including the one the model must predict,
so the training loss falls to ~0 while the model cannot generate. Inputs tokens[:-1], targets tokens[1:] on
modular-arithmetic sequences (a, b, a+b, a+2b, ... mod 17), Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage", "target-leakage"}
SPLIT = "heldout"
P, SEQ = 17, 16


def sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, P, (n, 1), generator=g), torch.randint(1, P, (n, 1), generator=g)
    tokens = (a + b * torch.arange(SEQ + 1)) % P
    return tokens[:, :-1], tokens[:, 1:]


class GRULM(L.LightningModule):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Embedding(P, dim)
        self.gru = nn.GRU(dim, dim, batch_first=True, bidirectional=True)  # BUG: a LM must be unidirectional
        self.head = nn.Linear(2 * dim, P)

    def forward(self, tokens):
        h, _ = self.gru(self.embed(tokens))
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).reshape(-1, P), y.reshape(-1))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x).reshape(-1, P), y.reshape(-1)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=4e-3)


def main():
    L.seed_everything(2101)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GRULM(), DataLoader(TensorDataset(*sequences(1500, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*sequences(256, 1)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
