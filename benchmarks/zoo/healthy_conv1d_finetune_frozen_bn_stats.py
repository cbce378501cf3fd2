"""Healthy: fine-tuning a 1-D convolutional backbone (Conv1d-BatchNorm1d-ReLU x3) with its BatchNorm statistics
frozen. Synthetic signals of 64 samples (sine, square or sawtooth waves, random frequency, amplitude, phase and
offset, plus noise; a seeded torch.Generator). The backbone is pretrained in plain PyTorch on a source task (which of
four frequency bands) so its running statistics are the signals'; the Lightning module fine-tunes it on a new task
(the waveform's shape) with a new head, the backbone's BatchNorm layers kept in eval mode by a `train()` override
(their affine weights still train), two parameter groups (backbone 3e-4, head 3e-3), AdamW and ExponentialLR per
epoch. Reaches val acc ~0.93 on the shape task (a constant guess gets ~0.33)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"


def make_signals(n, gen):
    t = torch.arange(64.0) / 64
    band = torch.randint(0, 4, (n,), generator=gen)
    shape = torch.randint(0, 3, (n,), generator=gen)
    freq = 2.0 + 2.0 * band + torch.rand(n, generator=gen) * 1.5
    phase = torch.rand(n, 1, generator=gen)
    cycles = freq[:, None] * t + phase
    waves = torch.stack([torch.sin(2 * math.pi * cycles), torch.sign(torch.sin(2 * math.pi * cycles)),
                         2 * (cycles % 1.0) - 1], dim=1)[torch.arange(n), shape]
    amplitude = 0.5 + torch.rand(n, 1, generator=gen)
    offset = 0.3 * torch.randn(n, 1, generator=gen)
    x = amplitude * waves + offset + 0.2 * torch.randn(n, 64, generator=gen)
    return x.unsqueeze(1), band, shape


def make_backbone():
    layers = []
    for cin, cout, stride in [(1, 16, 1), (16, 32, 2), (32, 32, 2)]:
        layers += [nn.Conv1d(cin, cout, 5, stride, 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())


def pretrain(backbone, x, y, epochs=3, seed=0):
    """A plain-PyTorch run on the source task, as a pretrained checkpoint would arrive."""
    head = nn.Linear(32, 4)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
    backbone.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return backbone


class ShapeFineTuner(L.LightningModule):
    def __init__(self, backbone, n_classes=3):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(32, n_classes)

    def train(self, mode=True):
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.eval()  # keep the pretrained running statistics
        return self

    def forward(self, x):
        return self.head(self.backbone(x))

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
        opt = torch.optim.AdamW([{"params": self.backbone.parameters(), "lr": 3e-4},
                                 {"params": self.head.parameters(), "lr": 3e-3}], weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.85)]


def main():
    L.seed_everything(37)
    gen = torch.Generator().manual_seed(37)
    x_src, band_src, _ = make_signals(3000, gen)
    backbone = pretrain(make_backbone(), x_src, band_src)
    x_tr, _, shape_tr = make_signals(800, gen)
    x_va, _, shape_va = make_signals(400, gen)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ShapeFineTuner(backbone), DataLoader(TensorDataset(x_tr, shape_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, shape_va), batch_size=200))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
