"""Bug: parameter-efficient domain adaptation of a small GRU language model. The LM is pretrained (short plain-PyTorch
phase) on clean arithmetic token streams (each sequence counts up by a fixed step modulo 16); it is then adapted in
Lightning to a noisier target domain (each token follows the rule with probability 0.7, otherwise it is random) by
freezing the embedding, GRU and LM head and training only a residual bottleneck adapter on the GRU outputs. The adapter
mixes neighbouring positions with a depthwise Conv1d, as convolutional adapters for speech/sequence models do.

The conv is `nn.Conv1d(r, r, 3, padding=1, groups=r)`: "same" padding, symmetric. At position t it reads the GRU
state at t + 1, which has already consumed token t + 1, the very token position t must predict. Only the adapter
trains, and it learns to route that future token to the LM head, so the next-token loss falls far below what the
noisy domain allows, on validation as well (same teacher-forced inputs). Generation is impossible with such a model.
Symptom: val next-token CE 0.086 nats, far below the data's per-token entropy floor of 1.356 nats; with a causal conv
(`padding=2` and the last two outputs dropped) val CE is 1.714 (above the floor, as it must be)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout24"
V, T = 16, 32


def streams(n, g, p_rule):
    start = torch.randint(0, V, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    seq = [start[:, 0]]
    for _ in range(T - 1):
        nxt = (seq[-1] + step[:, 0]) % V
        noise = torch.rand(n, generator=g) > p_rule
        seq.append(torch.where(noise, torch.randint(0, V, (n,), generator=g), nxt))
    return torch.stack(seq, 1)


class ConvAdapter(nn.Module):
    def __init__(self, d, r=16):
        super().__init__()
        self.down = nn.Linear(d, r)
        self.mix = nn.Conv1d(r, r, 3, padding=1, groups=r)
        self.up = nn.Linear(r, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        z = self.mix(self.down(h).transpose(1, 2)).transpose(1, 2)
        return h + self.up(F.gelu(z))


class GRULM(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.embed = nn.Embedding(V, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.head = nn.Linear(d, V)

    def forward(self, x, adapter=None):
        h = self.gru(self.embed(x))[0]
        return self.head(adapter(h) if adapter is not None else h)


class AdaptedLM(L.LightningModule):
    def __init__(self, lm, lr=3e-3):
        super().__init__()
        self.lm = lm.requires_grad_(False)
        self.adapter = ConvAdapter(64)
        self.lr = lr

    def _loss(self, seq):
        logits = self.lm(seq[:, :-1], self.adapter)
        return F.cross_entropy(logits.reshape(-1, V), seq[:, 1:].reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.adapter.parameters(), lr=self.lr, weight_decay=0.0)


def main():
    L.seed_everything(2403)
    g = torch.Generator().manual_seed(7)
    lm = GRULM()
    opt = torch.optim.Adam(lm.parameters(), lr=3e-3)
    for _ in range(150):
        seq = streams(64, g, p_rule=1.0)
        loss = F.cross_entropy(lm(seq[:, :-1]).reshape(-1, V), seq[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    train, val = streams(2048, g, 0.7), streams(512, g, 0.7)
    model = AdaptedLM(lm)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=256))
    p = 0.7 + 0.3 / V
    floor = -(p * math.log(p) + (V - 1) * (0.3 / V) * math.log(0.3 / V))
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} entropy_floor={floor:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
