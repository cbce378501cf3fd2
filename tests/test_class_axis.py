"""loss-input on per-pixel cross-entropy in real Trainer runs: (B, C, H, W) logits flattened with
`reshape(-1, C)` and no permute (classes and pixels interleave) fire; the same net flattened after
`permute(0, 2, 3, 1)`, after `flatten(2).transpose(1, 2)`, or given to cross_entropy unflattened stays silent."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import fit_report, loader, serious
from torch import nn

C = 3


def _masks():
    """Noisy 8x8 images whose pixel class is 0 (dark), 1 (mid) or 2 (bright): a learnable per-pixel rule."""
    gen = torch.Generator().manual_seed(0)
    level = torch.randint(0, C, (128, 8, 8), generator=gen)
    x = (level.float() + 0.3 * torch.randn(128, 8, 8, generator=gen)).unsqueeze(1)
    return x, level


class PixelNet(L.LightningModule):
    def __init__(self, flatten):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, C, 1))
        self.flatten = flatten

    def training_step(self, batch, batch_idx):
        x, m = batch
        logits = self.net(x)
        if self.flatten == "reshape":
            return F.cross_entropy(logits.reshape(-1, C), m.reshape(-1))
        if self.flatten == "view":
            return F.cross_entropy(logits.contiguous().view(-1, C), m.view(-1))
        if self.flatten == "permute":
            return F.cross_entropy(logits.permute(0, 2, 3, 1).reshape(-1, C), m.reshape(-1))
        if self.flatten == "transpose":
            return F.cross_entropy(logits.flatten(2).transpose(1, 2).reshape(-1, C), m.flatten())
        return F.cross_entropy(logits, m)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _run(tmp_path, flatten):
    L.seed_everything(0)
    return fit_report(tmp_path, PixelNet(flatten), loader(*_masks(), batch_size=16), my_callbacks(), max_epochs=1,
                      limit_train_batches=2, num_sanity_val_steps=0)


@pytest.mark.parametrize("flatten", ["reshape", "view"])
def test_class_axis_flattened_without_permute_fires(tmp_path, flatten):
    (finding,) = serious(_run(tmp_path, flatten), "loss-input")
    assert finding["severity"] == "error" and finding["data"]["class_axis"] == 1
    assert finding["data"]["source_shape"] == [16, C, 8, 8] and "permute(0, 2, 3, 1)" in finding["advice"]


@pytest.mark.parametrize("flatten", ["permute", "transpose", "none"])
def test_class_axis_moved_last_or_kept_at_dim_1_is_silent(tmp_path, flatten):
    assert serious(_run(tmp_path, flatten), "loss-input") == []
