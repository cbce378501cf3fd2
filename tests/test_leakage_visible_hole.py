"""target-leakage on a real Trainer for an inpainting CNN on sklearn's digits, fed ``cat([holed, mask])`` and scored
on the hole: a Dataset that punches the hole into a view of the stored image (so the target is holed too) fires, and
so does one that passes the unmasked image; the hole punched into a copy stays silent. The same when the input is
joined in ``training_step`` from ``(image, mask)`` batches: the image itself fires, the masked image is silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import digits, fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


class Holes(Dataset):
    def __init__(self, kind: str) -> None:
        self.kind, self.images = kind, digits(256)[0].reshape(-1, 1, 8, 8).clone()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        r, c = torch.randint(0, 6, (2,), generator=g).tolist()
        mask = torch.zeros(1, 8, 8)
        mask[:, r:r + 3, c:c + 3] = 1.0
        holed = self.images[i] if self.kind == "view" else self.images[i].clone()
        if self.kind != "unmasked":
            holed[:, r:r + 3, c:c + 3] = 0.0  # in place: on a view, the stored image (and the target) loses it too
        return torch.cat([holed, mask]), mask, self.images[i]


class Inpainter(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, mask, target = batch
        return ((self(x) - target) ** 2 * mask).sum() / mask.sum()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("kind", ["view", "unmasked", "copy"])
def test_inpainter_given_the_hole_it_must_fill_fires(tmp_path, kind):
    L.seed_everything(0)
    data = DataLoader(Holes(kind), batch_size=32)
    report = fit_report(tmp_path, Inpainter(), data, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) is (kind != "copy"), [f["message"] for f in found]
    if found:
        assert found[0]["data"] == {"channel": 0, "hole_channel": 1, "target": "2", "target_channel": 0}


class StepBuiltInput(Inpainter):
    """``(image, mask)`` batches; the two-channel input is joined in ``training_step``, with the masked image or
    (the bug: two names one letter apart) the image itself."""

    def __init__(self, masked: bool) -> None:
        super().__init__()
        self.masked = masked

    def training_step(self, batch, batch_idx):
        x, m = batch
        shown = x * (1 - m) if self.masked else x
        return ((self(torch.cat([shown, m], 1)) - x).abs() * m).sum() / m.sum()


@pytest.mark.parametrize("masked", [True, False])
def test_input_joined_in_the_step_with_the_unmasked_image_fires(tmp_path, masked):
    images = digits(256)[0].reshape(-1, 1, 8, 8)
    masks = torch.zeros_like(images)
    for i in range(len(masks)):
        r, c = torch.randint(0, 6, (2,), generator=torch.Generator().manual_seed(i)).tolist()
        masks[i, :, r:r + 3, c:c + 3] = 1.0
    data = DataLoader(list(zip(images, masks)), batch_size=32)
    L.seed_everything(0)
    report = fit_report(tmp_path, StepBuiltInput(masked), data, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) is not masked, [f["message"] for f in found]
    if found:
        assert found[0]["data"]["target"] == "0" and "model's input" in found[0]["message"]


class MissingIndicatorClassifier(L.LightningModule):
    """A series classifier fed ``cat([filled, missing])``: the filled values equal the batch's, the indicator is a
    minority 0/1 channel, but the output is one score per class, not the hidden values."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                                 nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        filled, missing, y = batch
        return nn.functional.cross_entropy(self(torch.cat([filled, missing], 1)), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_missing_value_indicator_beside_the_values_is_no_hole(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (128,), generator=g)
    series = torch.sin(torch.arange(48) / (2 + y[:, None])) + 0.3 * torch.randn(128, 48, generator=g)
    missing = (torch.rand(128, 1, 48, generator=g) < 0.2).float()
    filled = series[:, None] * (1 - missing)
    data = DataLoader(list(zip(filled, missing, y)), batch_size=32)
    L.seed_everything(0)
    report = fit_report(tmp_path, MissingIndicatorClassifier(), data,
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    assert not serious(report)


class EventForecaster(L.LightningModule):
    """A Conv1d forecaster fed ``cat([series, events])`` (a 0/1 event flag, mostly 0), scored on the next values: the
    series it is shown is an input, and the loss compares with the target."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Conv1d(2, 1, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        series, events, target = batch
        return nn.functional.mse_loss(self(torch.cat([series, events], 1)), target)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_event_flag_beside_the_series_of_a_forecaster_is_no_hole(tmp_path):
    g = torch.Generator().manual_seed(0)
    events = (torch.rand(128, 1, 49, generator=g) < 0.1).float()
    series = torch.sin(torch.arange(49) / 3) + events.cumsum(-1) * 0.1 + 0.1 * torch.randn(128, 1, 49, generator=g)
    data = DataLoader(list(zip(series[..., :-1], events[..., :-1], series[..., 1:])), batch_size=32)
    leakage = LeakageChecks()
    L.seed_everything(0)
    report = fit_report(tmp_path, EventForecaster(), data, [leakage, SanitySummary(print_summary=False)], logger=None,
                        max_steps=2)
    assert not serious(report)
    assert any("beside a hole mask, but the loss compares with another tensor" in r
               for r in leakage._ran["target-leakage"])
