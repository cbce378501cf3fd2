"""label-distribution on multi-hot targets built from ragged tag lists in real Trainer runs: padding with tag 0, a
real tag, before the scatter fires; padding with an id that is dropped stays silent, and so does a tag that occurs
on every row."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.checks.multi_hot_padding import padded_class

K = 5


def _tagged(n=256):
    """Features that sum a fixed pattern per tag, 1 to 3 tags per sample: a learnable multi-label rule."""
    gen = torch.Generator().manual_seed(0)
    patterns = torch.randn(K, 12, generator=gen)
    samples = []
    for _ in range(n):
        tags = sorted(torch.randperm(K, generator=gen)[:int(torch.randint(1, 4, (1,), generator=gen))].tolist())
        samples.append((patterns[tags].sum(0) + 0.3 * torch.randn(12, generator=gen), tags))
    return samples


def _collate(pad, always=None):
    def collate(batch):
        width = max(len(tags) for _, tags in batch)
        padded = torch.tensor([tags + [pad] * (width - len(tags)) for _, tags in batch])
        rows = torch.zeros(len(batch), K + 1).scatter_(1, padded, 1.0)[:, :K]
        if always is not None:
            rows[:, always] = 1.0
        return torch.stack([x for x, _ in batch]), rows
    return collate


class Tagger(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, K))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _run(tmp_path, collate):
    L.seed_everything(0)
    train = DataLoader(_tagged(), batch_size=32, shuffle=True, collate_fn=collate)
    return fit_report(tmp_path, Tagger(), train, my_callbacks(), max_epochs=1, limit_train_batches=6,
                      num_sanity_val_steps=0)


def test_tags_padded_with_real_tag_zero_fire(tmp_path):
    (finding,) = serious(_run(tmp_path, _collate(pad=0)), "label-distribution")
    assert finding["data"]["class"] == 0 and finding["data"]["chance_bound"] < 1e-3
    assert "padding" in finding["advice"] and finding["data"]["rate_on_long_rows"] < 1


@pytest.mark.parametrize("always", [None, 2], ids=["padding-dropped", "tag-on-every-row"])
def test_padding_dropped_or_tag_always_present_is_silent(tmp_path, always):
    assert serious(_run(tmp_path, _collate(pad=K, always=always)), "label-distribution") == []


def test_a_tag_that_only_occurs_alone_is_not_padding():
    rows = torch.zeros(90, 4)
    rows[::2, 0] = 1  # "none of the above": always alone, so on every row shorter than the two-tag rows
    rows[1::2, 1:3] = 1
    assert padded_class([rows]) is None
    rows[1::4, 0] = 1  # ... whereas a tag 0 that joins the other rows' tags is not "alone"
    rows[1::4, 1] = 0
    assert padded_class([rows]) is None  # the two-tag rows with tag 0 are the longest: no shorter row holds others
