"""Healthy: a causal convolutional language model (WaveNet-style: left-padded dilated Conv1d, so position t sees
only tokens <= t) on modular-arithmetic sequences (a, b, a+b, a+2b, ... mod 17); inputs tokens[:-1], targets
tokens[1:]. AdamW, CosineAnnealingLR per epoch."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
P, SEQ, EPOCHS = 17, 16, 6


def sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, P, (n, 1), generator=g), torch.randint(1, P, (n, 1), generator=g)
    tokens = (a + b * torch.arange(SEQ + 1)) % P
    return tokens[:, :-1], tokens[:, 1:]


class CausalConv(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        self.pad = dilation  # kernel 2: pad (kernel - 1) * dilation on the left only
        self.conv = nn.Conv1d(channels, channels, 2, dilation=dilation)

    def forward(self, x):
        return x + F.gelu(self.conv(F.pad(x, (self.pad, 0))))


class ConvLM(L.LightningModule):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Embedding(P, dim)
        self.blocks = nn.Sequential(*[CausalConv(dim, d) for d in (1, 2, 4, 8)])
        self.head = nn.Linear(dim, P)

    def forward(self, tokens):
        h = self.blocks(self.embed(tokens).transpose(1, 2)).transpose(1, 2)
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
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)]


def main():
    L.seed_everything(2102)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ConvLM(), DataLoader(TensorDataset(*sequences(1500, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*sequences(256, 1)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
