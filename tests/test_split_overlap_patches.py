"""split-overlap on image patches: patches cut with a sliding window and then split at random fire (RGB scenes with
sensor noise, and grey mosaics of digits with their blank background); patches of scenes split first, scenes split
by region (patches overlap at the boundary, from one side), and images of rendered shapes that repeat everywhere
stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import LossSteps, read_report, serious, trainer
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import patch_overlap as P

PATCH, STRIDE = 16, 4


class PatchNet(LossSteps):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(8, 2))

    def _loss(self, batch):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)


def _scenes(n: int, channels: int = 3, side: int = 48):
    g = torch.Generator().manual_seed(0)
    smooth = nn.functional.avg_pool2d(torch.rand(n, channels, side + 4, side + 4, generator=g), 5, 1)
    return smooth + 0.05 * torch.randn(n, channels, side, side, generator=g)


def _mosaics(n: int):
    digits = torch.tensor(load_digits().images, dtype=torch.float32) / 16
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))[:n * 16].view(n, 4, 4)
    return digits[order].permute(0, 1, 3, 2, 4).reshape(n, 1, 32, 32)


def _cut(images, stride: int = STRIDE):
    p = images.unfold(2, PATCH, stride).unfold(3, PATCH, stride)  # (n, C, rows, cols, P, P)
    patches = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1], PATCH, PATCH)
    return patches, (patches.mean(dim=(1, 2, 3)) > patches.mean()).long()


def _fit(tmp_path, train, val):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                num_sanity_val_steps=1)
    t.fit(PatchNet(train[0].shape[1]), DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
          DataLoader(TensorDataset(*val), batch_size=64))
    return read_report(t.log_dir)


def _random_split(x, y):
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    cut = int(0.8 * len(x))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


@pytest.mark.parametrize("images", ["scenes", "mosaics"])
def test_sliding_patches_split_at_random_fire(tmp_path, images):
    source = _scenes(12) if images == "scenes" else _mosaics(40)
    found = serious(_fit(tmp_path, *_random_split(*_cut(source))), "split-overlap")
    assert found and found[0]["data"]["both_sides_share"] > 0.2, found
    assert "Split the source images" in found[0]["advice"]


@pytest.mark.parametrize("case", ["scenes_first", "by_region"])
def test_patches_of_scenes_split_first_stay_silent(tmp_path, case):
    scenes = _scenes(12)
    if case == "scenes_first":
        train, val = _cut(scenes[:10]), _cut(scenes[10:])
    else:  # the bottom third of each scene for validation: its first rows of patches reach into training, from above
        train, val = _cut(scenes[:, :, :32]), _cut(scenes[:, :, 20:])
    report = _fit(tmp_path, train, val)
    assert not serious(report, "split-overlap")
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "validation patches" in detail, detail


def test_rendered_shapes_that_repeat_everywhere_are_chance():
    # Every image holds the same few squares at random places: tiles of their edges and corners coincide within one
    # image as often as across images, so a match at one shift is no overlap.
    g = torch.Generator().manual_seed(3)
    images = torch.zeros(300, 1, 24, 24)
    for image in images:
        for _ in range(3):
            y, x = torch.randint(0, 18, (2,), generator=g).tolist()
            image[0, y:y + 6, x:x + 6] = 1.0
    val = images[250:]
    found = P.judge(P.tile_hashes(images[:250], grid=True), P.tile_hashes(val, grid=False), P.tile_size(1),
                    P.tile_hashes(val.transpose(2, 3), grid=False))
    assert found["both"] > 0.3 and found["both"] - found["chance"] < 0.1, found
