"""Healthy: a GRU causal language model on modular-arithmetic sequences: each sequence is a, b, a+b, a+2b, ...
(mod 17), so after two tokens every next token is determined. Inputs are tokens[:-1], targets tokens[1:] (the
shift is done in the dataset). Adam, ExponentialLR(gamma=0.8) stepped per epoch, gradient clipping."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
P, SEQ = 17, 16


def sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, P, (n, 1), generator=g), torch.randint(1, P, (n, 1), generator=g)
    tokens = (a + b * torch.arange(SEQ + 1)) % P
    return tokens[:, :-1], tokens[:, 1:]


class GRULM(L.LightningModule):
    def __init__(self, dim=96):
        super().__init__()
        self.embed = nn.Embedding(P, dim)
        self.gru = nn.GRU(dim, dim, num_layers=2, batch_first=True)
        self.head = nn.Linear(dim, P)

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
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, P), y.reshape(-1)))
        self.log("val_acc_after_2", (logits[:, 2:].argmax(-1) == y[:, 2:]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=4e-3)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)]


def main():
    L.seed_everything(1451)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GRULM(), DataLoader(TensorDataset(*sequences(1500, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*sequences(256, 1)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
