"""Bug: a WaveNet-style next-token LM (dilated Conv1d stack, kernel 2, dilations 1/2/4/8, gated residual blocks)
on a synthetic order-2 Markov source. Each conv pads (k-1)*d on both sides (Conv1d's `padding=`) and the layer
then trims the wrong end: `out[..., trim:]` instead of `out[..., :-trim]`, so the output at position t is
computed from inputs t..t+d: every block looks ahead, and the stack sees the very next token it must predict.
Measured: val loss 0.056, far below the source's entropy floor 1.36 that no causal model can beat (fixed,
healthy_wavenet_dilated_conv_lm: 1.55)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage", "target-leakage"}
SPLIT = "heldout3"
VOCAB, LENGTH = 16, 48


def markov_sequences(n, seed):
    rule = torch.randint(0, VOCAB, (VOCAB, VOCAB), generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(seed)
    seq = torch.zeros(n, LENGTH + 1, dtype=torch.long)
    seq[:, :2] = torch.randint(0, VOCAB, (n, 2), generator=g)
    for t in range(2, LENGTH + 1):
        follow = torch.rand(n, generator=g) < 0.7
        seq[:, t] = torch.where(follow, rule[seq[:, t - 2], seq[:, t - 1]], torch.randint(0, VOCAB, (n,), generator=g))
    return TensorDataset(seq[:, :-1], seq[:, 1:])


class CausalConv(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        self.trim = dilation  # (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size=2, dilation=dilation, padding=self.trim)

    def forward(self, x):
        return self.conv(x)[..., self.trim:]  # BUG: drops the first outputs instead of the last ones


class GatedBlock(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        self.conv = CausalConv(channels, dilation)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        return x + self.out(torch.tanh(a) * torch.sigmoid(b))


class WaveNetLM(L.LightningModule):
    def __init__(self, channels=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, channels)
        self.blocks = nn.Sequential(*[GatedBlock(channels, d) for d in (1, 2, 4, 8)])
        self.head = nn.Conv1d(channels, VOCAB, 1)

    def forward(self, tokens):
        h = self.blocks(self.embed(tokens).transpose(1, 2))
        return self.head(F.relu(h)).transpose(1, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1)))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(4242)
    train = DataLoader(markov_sequences(640, 0), batch_size=32, shuffle=True)
    val = DataLoader(markov_sequences(256, 1), batch_size=128)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WaveNetLM(), train, val)
    print(f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
