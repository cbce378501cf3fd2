"""target-leakage on image inputs: a legend swatch whose grey level encodes the class, burned into the corner of
every digit by an "export tool", is found among the pixels of the first batch; the same CNN on the clean digits,
and a one-hot sequence whose class is its token at one place (a synthetic task), stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, fit_report, loader, serious
from torch import nn

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.leakage import label_columns


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))


@pytest.mark.parametrize("swatch", [False, True])
def test_a_class_swatch_burned_into_the_images_is_target_leakage(tmp_path, swatch):
    x, y = digits(512)
    x = x.view(-1, 1, 8, 8).clone()
    if swatch:
        x[:, :, :2, :2] = (y.float() / 9).view(-1, 1, 1, 1)  # the legend: the class as a grey level
    L.seed_everything(0)
    report = fit_report(tmp_path, Classifier(net=cnn()), loader(x, y),
                        [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=3)
    found = serious(report, "target-leakage")
    assert bool(found) is swatch
    if swatch:
        assert found[0]["data"]["positions"][0] == [0, 0, 0]
        assert len(found[0]["data"]["positions"]) == 4
    else:
        detail = next(c["detail"] for c in report["checks"] if c["name"] == "target-leakage")
        assert "no input position holds one value per class (64 positions)" in detail


def test_a_one_hot_sequence_classified_by_its_token_at_one_place_is_a_task(tmp_path):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 6, (512, 10), generator=g)
    y = (tokens[:, 3] == 0).long()  # the rule to learn: is the fourth token a 0? Its one-hot column is the label
    x = nn.functional.one_hot(tokens, 6).float()
    net = nn.Sequential(nn.Flatten(), nn.Linear(60, 32), nn.ReLU(), nn.Linear(32, 2))
    L.seed_everything(0)
    report = fit_report(tmp_path, Classifier(net=net, classes=2), loader(x, y),
                        [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=3)
    assert not serious(report, "target-leakage")
    assert label_columns(x[:64].flatten(1), y[:64]) == ([18], "equal")  # what the binary exclusion keeps silent


@pytest.mark.parametrize("coords", ["before tiling", "per tile"])
def test_jigsaw_tiles_carrying_their_original_place_spell_the_permutation(tmp_path, coords):
    """A jigsaw pretext task on digits (4 tiles of 4x4, 24 permutations): coordinate channels added before the image
    is cut give each tile its origin, so the tiles' coordinates spell the label; added per tile they are the same in
    every slot and say nothing."""
    from itertools import permutations

    perms = torch.tensor(list(permutations(range(4))))
    x, _ = digits(512)
    images = x.view(-1, 1, 8, 8)
    ramp = torch.linspace(-1, 1, 8 if coords == "before tiling" else 4)
    grid = torch.stack([ramp[:, None].expand(len(ramp), len(ramp)), ramp[None, :].expand(len(ramp), len(ramp))])

    def tiles(t: torch.Tensor) -> torch.Tensor:  # (N, C, 8, 8) -> (N, 4, C, 4, 4)
        return t.reshape(len(t), t.shape[1], 2, 4, 2, 4).permute(0, 2, 4, 1, 3, 5).reshape(len(t), 4, -1, 4, 4)

    if coords == "before tiling":
        cut = tiles(torch.cat([images, grid.expand(len(images), -1, -1, -1)], 1))
    else:
        cut = tiles(images)
        cut = torch.cat([cut, grid.expand(len(images), 4, -1, -1, -1)], 2)
    y = torch.randint(0, 24, (len(x),), generator=torch.Generator().manual_seed(1))
    shuffled = torch.stack([cut[i, perms[y[i]]] for i in range(len(x))])
    net = nn.Sequential(nn.Flatten(), nn.Linear(4 * 3 * 16, 64), nn.ReLU(), nn.Linear(64, 24))
    L.seed_everything(0)
    report = fit_report(tmp_path, Classifier(net=net, classes=24), loader(shuffled, y),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=3)
    found = serious(report, "target-leakage")
    assert bool(found) is (coords == "before tiling"), [f["message"] for f in found]
    if found:
        assert found[0]["data"]["how"] == "tuple" and "jigsaw" in found[0]["message"]
