"""split-overlap on near copies: digits written out with jittered copies (contrast, pixel noise) before a random split
fire; the same copies made after the split (each split's copies stay in it), plain digits, and smooth low-dimensional
signals (sine waves of random phase, whose neighbours are naturally close) stay silent. Tabular rows (four diabetes
measurements, standardised per feature) jittered six times before the split fire; jittered after it, silent."""

from __future__ import annotations

import lightning as L
import torch
from helpers import LossSteps, read_report, serious, trainer
from sklearn.datasets import load_diabetes, load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import near_copies as N


class Mlp(LossSteps):
    def __init__(self, width: int, outputs: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, outputs))

    def forward(self, x):
        return self.net(x)

    def _loss(self, batch):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)


class Regressor(LossSteps):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def _loss(self, batch):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)


def _digits():
    d = load_digits()
    return torch.tensor(d.images, dtype=torch.float32) / 16.0, torch.tensor(d.target)


def _jitter(images, labels, copies=2):
    g = torch.Generator().manual_seed(5)
    out = [images]
    for _ in range(copies):
        contrast = 0.85 + 0.3 * torch.rand(len(images), 1, 1, generator=g)
        out.append((images * contrast + 0.05 * torch.randn(images.shape, generator=g)).clamp(0, 1))
    return torch.cat(out), labels.repeat(copies + 1)


def _split(x, y, share=0.2):
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = int(share * len(x))
    return (x[order[cut:]], y[order[cut:]]), (x[order[:cut]], y[order[:cut]])


def _diabetes():
    d = load_diabetes()  # four continuous measurements: per-sample centring would fold them onto a circle
    x, y = torch.tensor(d.data[:, [0, 2, 3, 4]], dtype=torch.float32), torch.tensor(d.target, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()


def _jitter_rows(x, y, copies=6):
    g = torch.Generator().manual_seed(7)
    rows = x.repeat(copies, 1)
    return rows + 0.05 * torch.randn(rows.shape, generator=g), y.repeat(copies)


def _fit(tmp_path, train, val, model=None):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                num_sanity_val_steps=1)
    model = model or Mlp(train[0][0].numel())
    t.fit(model, DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
          DataLoader(TensorDataset(*val), batch_size=256))
    return read_report(t.log_dir)


def test_jittered_copies_before_split_fire(tmp_path):
    train, val = _split(*_jitter(*_digits()))
    found = serious(_fit(tmp_path, train, val), "split-overlap")
    assert found and "near_copy_share" in found[0]["data"]
    assert found[0]["data"]["near_copy_share"] > 0.2


def test_jittered_copies_after_split_stay_silent(tmp_path):
    train, val = _split(*_digits())
    report = _fit(tmp_path, _jitter(*train), _jitter(*val))
    assert not serious(report, "split-overlap")
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "far closer than their natural neighbours" in detail


def test_plain_digits_stay_silent(tmp_path):
    assert not serious(_fit(tmp_path, *_split(*_digits())), "split-overlap")


def test_tabular_rows_jittered_before_split_fire(tmp_path):
    train, val = _split(*_jitter_rows(*_diabetes()))
    found = serious(_fit(tmp_path, train, val, Regressor(4)), "split-overlap")
    assert found and found[0]["data"]["near_copy_share"] > 0.3


def test_tabular_rows_jittered_after_split_stay_silent(tmp_path):
    train, val = _split(*_diabetes())
    report = _fit(tmp_path, _jitter_rows(*train), val, Regressor(4))
    assert not serious(report, "split-overlap")
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "far closer than their natural neighbours" in detail


def test_copy_test_holds_its_false_alarm_rate_on_natural_spacing():
    g = torch.Generator().manual_seed(0)
    k, k0, copies = N.CLUSTERS
    for m in (1.0, 4.0, 12.0):
        near = torch.sort(torch.rand(20000, k, generator=g), dim=1).values ** (1 / m)
        assert float(N.copy_flags(near, torch.full((20000,), m), k0, copies).float().mean()) < 2 * N.P_COPY
        near[:, :5] *= 0.3  # five copies of each record, then natural neighbours
        flagged = float(N.copy_flags(near, torch.full((20000,), m), k0, copies).float().mean())
        assert flagged > (0.01 if m == 1 else 0.99)
        # ten copies of each record: the nearest against the 8th (itself a copy) sees nothing, the 10th against the 16th does
        near = torch.sort(torch.rand(20000, k, generator=g), dim=1).values ** (1 / m)
        near[:, :10] *= 0.3
        single = float(N.copy_flags(near, torch.full((20000,), m), 8, 1).float().mean())
        assert single < 2 * N.P_COPY < float(N.copy_flags(near, torch.full((20000,), m), k0, copies).float().mean())


def test_smooth_low_dimensional_signals_stay_silent():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(64).float()
    waves = torch.sin(0.2 * t + 6.28 * torch.rand(2000, 1, generator=g))  # a 1-d family: close neighbours
    result = N.judge(N.sketch(waves[:1600]), N.sketch(waves[1600:]))
    assert result is not None and result["share"] < 0.01 and result["dims"] < 2


def test_token_ids_are_not_sketched():
    assert not N.float_values(torch.randint(0, 100, (8, 16)).float())
    assert N.float_values(torch.rand(8, 16))


def test_sketch_leaves_global_rng_alone():
    N._PROJECTIONS.clear()
    x = torch.rand(4, 33)
    state = torch.get_rng_state()
    N.sketch(x)
    assert torch.equal(state, torch.get_rng_state())


def test_tabular_rows_with_counts_and_category_statistics_stay_silent():
    # Listings: two measurements, a bedroom count (6 levels) and the neighbourhood's median price (12 levels). The
    # discrete columns cut the rows into 72 cells of about 20; read with them, each cell's rows sit far inside the
    # spacing between cells, like copies. Left out, natural spacing in the two measurements remains.
    g = torch.Generator().manual_seed(0)
    n = 2000
    hood, beds = torch.randint(0, 12, (n,), generator=g), torch.randint(1, 7, (n,), generator=g)
    rows = torch.stack([torch.randn(n, generator=g), 60 * torch.rand(n, generator=g), beds.float(),
                        torch.linspace(-0.6, 0.8, 12)[hood]], 1)
    assert N.judge(*N.standardise(rows[:1600], rows[1600:]), clusters=True)["share"] < 0.05
    # The same rows jittered in their measurements 8 times before the split: copies, whatever the discrete columns.
    copies = rows[:250].repeat(8, 1)
    copies[:, :2] += 0.01 * torch.randn(2000, 2, generator=g)
    order = torch.randperm(2000, generator=g)
    found = N.judge(*N.standardise(copies[order[:1600]], copies[order[1600:]]), clusters=True)
    assert found["share"] > 0.5, found
