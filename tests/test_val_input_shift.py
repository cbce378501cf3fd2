"""val-divergence's input-shift pattern on real Trainers: per-sample peak normalisation applied to the training
split only (validation waveforms at their raw gain) fires; the same normalisation on both splits, and train-only
augmentation (random gain and noise) on normalised inputs, stay silent."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence

N = 128


def _clips(n, seed):
    """Tones of one of 3 frequencies at a random gain spanning 1000x."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    t = torch.arange(N) / N
    clips = torch.sin(2 * math.pi * (4 + 4 * labels[:, None]) * t) + 0.1 * torch.randn(n, N, generator=g)
    return clips * 10 ** torch.empty(n, 1).uniform_(-2, 1, generator=g), labels


class Clips(Dataset):
    def __init__(self, split, mode):
        self.x, self.y = _clips(512 if split == "train" else 128, 0 if split == "train" else 1)
        self.train, self.mode = split == "train", mode

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.train and self.mode == "augment":  # train-only augmentation, after a shared normalisation
            x = x / x.abs().max() * float(torch.empty(()).uniform_(0.5, 1.5)) + 0.05 * torch.randn_like(x)
        elif self.train or self.mode != "train_only":
            x = x / x.abs().max()
        return x.unsqueeze(0), self.y[i]


class ToneNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(1, 8, 9, padding=4), nn.ReLU(), nn.AdaptiveAvgPool1d(8), nn.Flatten(),
                                 nn.Linear(64, 3))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("mode, fires", [("train_only", True), ("both", False), ("augment", False)])
def test_inputs_normalised_in_training_only_fire(tmp_path, mode, fires):
    L.seed_everything(0)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=4)
    t.fit(ToneNet(), DataLoader(Clips("train", mode), batch_size=32, shuffle=True),
          DataLoader(Clips("val", mode), batch_size=64))
    found = serious(read_report(t.log_dir), "val-divergence")
    assert bool(found) == fires, found
    if fires:
        assert found[0]["data"]["pattern"] == "input-shift" and found[0]["data"]["val_share_off_scale"] > 0.5
        assert found[0]["where"] == "validation inputs"
