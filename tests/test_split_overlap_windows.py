"""split-overlap on windowed recordings: overlapping windows cut first and split at random fire (raw windows and
windows standardised one by one); windows of recordings split first, and a forecaster validated on the last part of
each series (its windows reach back into training at the boundary, on one side), stay silent. Short windows of one
hourly series cut every hour and shuffled by `train_test_split` fire; the same split in time, or windows that do not
overlap, stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import LossSteps, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import window_overlap as W

WINDOW, STRIDE = 48, 24


class WindowNet(LossSteps):
    def __init__(self, channels: int, outputs: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(channels, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
                                 nn.Flatten(), nn.Linear(8, outputs))
        self.outputs = outputs

    def forward(self, x):  # (batch, time, channels)
        return self.net(x.transpose(1, 2))

    def _loss(self, batch):
        x, y = batch
        out = self(x)
        return nn.functional.cross_entropy(out, y) if self.outputs > 1 else nn.functional.mse_loss(out[:, 0], y)


def _recordings(n: int, length: int = 240):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(3, (n,), generator=g)
    t = torch.arange(length).float()
    waves = torch.sin(t[None, :, None] * (0.1 + 0.05 * labels[:, None, None]))
    return waves + 0.3 * torch.randn(n, length, 3, generator=g), labels


def _cut(signals, labels):
    w = signals.unfold(1, WINDOW, STRIDE).permute(0, 1, 3, 2)  # (recordings, windows, time, channels)
    return w.reshape(-1, WINDOW, signals.shape[2]), labels.repeat_interleave(w.shape[1])


def _fit(tmp_path, train, val, channels=3, outputs=3):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                num_sanity_val_steps=1)
    t.fit(WindowNet(channels, outputs), DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
          DataLoader(TensorDataset(*val), batch_size=64))
    return read_report(t.log_dir)


@pytest.mark.parametrize("standardised", [False, True])
def test_overlapping_windows_split_at_random_fire(tmp_path, standardised):
    x, y = _cut(*_recordings(40))
    if standardised:  # each window normalised on its own: the shared stretches differ by a scale and an offset
        x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    cut = int(0.8 * len(x))
    report = _fit(tmp_path, (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]]))
    found = serious(report, "split-overlap")
    assert found and "time_axis" in found[0]["data"]
    data = found[0]["data"]
    assert data["earlier_share"] > 0.5 and data["later_share"] > 0.5 and found[0]["severity"] == "error"


def test_windows_of_recordings_split_first_stay_silent(tmp_path):
    signals, labels = _recordings(40)
    train, val = _cut(signals[:32], labels[:32]), _cut(signals[32:], labels[32:])
    report = _fit(tmp_path, train, val)
    assert not serious(report, "split-overlap")
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "0% of" in detail and "validation windows" in detail


def test_forecaster_validated_on_the_last_part_of_each_series_stays_silent(tmp_path):
    signals, _ = _recordings(24, length=300)
    series = signals[..., :1]

    def windows(part):
        w = part.unfold(1, WINDOW + 1, 4).permute(0, 1, 3, 2).reshape(-1, WINDOW + 1, 1)
        return w[:, :-1], w[:, -1, 0]

    train = windows(series[:, :220])
    val = windows(series[:, 220 - WINDOW:])  # the first validation windows' context reaches back into training
    report = _fit(tmp_path, train, val, channels=1, outputs=1)
    assert not serious(report, "split-overlap")
    one_sided = W.judge(W.window_runs(train[0], 1), W.window_runs(val[0], 1))
    assert one_sided["before"] > 0.2 and one_sided["after"] == 0.0  # overlap at the boundary, on one side


def test_runs_ignore_affine_changes_and_straight_lines():
    x = torch.randn(2, 64, 2)
    a, b = W.window_runs(x, 1), W.window_runs(3 * x + 1, 1)
    assert torch.equal(a, b)
    ramp = torch.arange(64.0)[None, :, None].expand(1, 64, 2)
    assert not W.window_runs(ramp, 1).any()  # one signature throughout: nothing to match on


class Forecaster(LossSteps):
    """A small causal-conv forecaster on ``(B, 1, T)`` windows of one series, predicting the next 6 steps."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(1, 8, 5), nn.GELU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 6))

    def _loss(self, batch):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)


def _hourly_windows(lookback: int = 48, stride: int = 1, days: int = 40):
    """Windows of one hourly series (daily profile, trend, noise), standardised, cut every ``stride`` hours."""
    g = torch.Generator().manual_seed(3)
    hours = torch.arange(days * 24).float()
    profile = torch.exp(-((hours % 24 - 8) ** 2) / 3) + 1.2 * torch.exp(-((hours % 24 - 17.5) ** 2) / 4)
    series = profile * (1 + hours / hours[-1]) + 0.1 * torch.randn(len(hours), generator=g)
    z = (series - series.mean()) / series.std()
    w = z.unfold(0, lookback + 6, stride)
    return w[:, None, :lookback], w[:, lookback:]


def _fit_forecaster(tmp_path, train, val):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                num_sanity_val_steps=0)
    t.fit(Forecaster(), DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
          DataLoader(TensorDataset(*val), batch_size=256))
    return read_report(t.log_dir)


def test_hourly_windows_cut_every_hour_and_shuffled_fire(tmp_path):
    """`train_test_split(X, Y, test_size=0.2)` meant as "the last 20 %" shuffles: 48-step windows of one series,
    shorter than two runs, still share 47 steps with their neighbours."""
    x, y = _hourly_windows()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(x))
    found = serious(_fit_forecaster(tmp_path, (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])),
                    "split-overlap")
    assert found and found[0]["data"]["time_axis"] == 2 and found[0]["data"]["both_sides_share"] > 0.9


@pytest.mark.parametrize("split", ["chronological", "chronological_gap", "non_overlapping_shuffled"])
def test_hourly_windows_split_in_time_or_not_overlapping_stay_silent(tmp_path, split):
    x, y = _hourly_windows(stride=54, days=200) if split == "non_overlapping_shuffled" else _hourly_windows()
    cut = int(0.8 * len(x))
    if split == "non_overlapping_shuffled":
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        train, val = (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])
    else:
        gap = 54 if split == "chronological_gap" else 0
        train, val = (x[:cut - gap], y[:cut - gap]), (x[cut:], y[cut:])
    report = _fit_forecaster(tmp_path, train, val)
    assert not serious(report, "split-overlap")
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "validation windows" in detail  # the windows were read, and judged one-sided or apart


def test_windows_are_read_from_three_runs():
    assert W.min_steps(1) == 28 and W.min_steps(3) == 12
    assert W.readings(torch.randn(2, 1, 28)) == [2] and W.readings(torch.randn(2, 1, 27)) == []
    assert W.readings(torch.randn(2, 12, 3)) == [1]


def _lab_stays(n: int, seed: int, hours: int = 40) -> torch.Tensor:
    """GRU-D-style inputs of independent stays: three labs measured at random hours, carried forward between
    readings, their 0/1 observed masks and log1p(hours since each was measured)."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, 1, 3, generator=g) + 0.3 * torch.randn(n, hours, 3, generator=g)
    observed = torch.rand(n, hours, 3, generator=g) < torch.tensor([0.3, 0.1, 0.2])
    observed[:, 0] = True
    carried, since = torch.zeros_like(values), torch.zeros_like(values)
    last, gap = values[:, 0], torch.zeros_like(values[:, 0])
    for t in range(hours):
        gap = torch.where(observed[:, t], torch.zeros_like(gap), gap + 1)
        last = torch.where(observed[:, t], values[:, t], last)
        carried[:, t], since[:, t] = last, gap
    return torch.cat([carried, observed.float(), torch.log1p(since)], 2)


def test_carried_forward_lab_series_of_independent_stays_stay_silent(tmp_path):
    """Carried-forward values, masks and gap counters encode little more than when each lab was measured: unrelated
    stays coincide over a few steps, on both sides (without the chance bar 14 % of validation stays did)."""
    train, val = _lab_stays(2000, 1), _lab_stays(500, 2)
    labels = (train[:, -1, 0] > 0).long(), (val[:, -1, 0] > 0).long()
    report = _fit(tmp_path, (train, labels[0]), (val, labels[1]), channels=9, outputs=2)
    assert not serious(report, "split-overlap")
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "validation windows" in detail  # read as windows, and judged apart


def test_measured_windows_of_the_same_shape_cut_with_a_hop_and_split_at_random_fire(tmp_path):
    """The same shape (40 steps, 9 channels) cut from measured recordings with a hop of 10 steps and split at
    random: measured values do not coincide by chance, and the overlaps are found."""
    g = torch.Generator().manual_seed(3)
    signals = torch.randn(60, 200, 9, generator=g).cumsum(1)
    x = signals.unfold(1, 40, 10).permute(0, 1, 3, 2).reshape(-1, 40, 9)
    y = (x[:, -1, 0] > x[:, 0, 0]).long()
    order = torch.randperm(len(x), generator=g)
    cut = int(0.8 * len(x))
    found = serious(_fit(tmp_path, (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]]),
                         channels=9, outputs=2), "split-overlap")
    assert found and found[0]["data"]["both_sides_share"] > 0.5
