"""val-divergence on real Trainers: a preprocessing step fitted again on the validation rows
(``fit_transform(x_val)``) fires from the exact fingerprint it leaves on both splits; the correct pipeline (fit on
train, ``transform`` validation), a pipeline fitted on all rows, a validation pass cut by ``limit_val_batches``,
noise-augmented training rows and validation on the training rows stay silent."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from helpers import loader, read_report, serious, trainer
from torch.utils.data import DataLoader, Dataset

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence
from lightning_sanity.checks.refit_transform import column_moments, judge_refit, merge

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_wine  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402


class Tabular(L.LightningModule):
    def __init__(self, n_in: int, n_classes: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, 32), torch.nn.ReLU(), torch.nn.Linear(32, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


PIPELINES = {
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "minmax-sym": lambda: MinMaxScaler(feature_range=(-1, 1)),
    "pca-whiten": lambda: make_pipeline(StandardScaler(), PCA(n_components=6, whiten=True)),
}


def _split(data: str, pipeline: str, fit: str):
    x, y = (load_breast_cancer if data == "breast_cancer" else load_wine)(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, stratify=y, random_state=3)
    step = PIPELINES[pipeline]()
    if fit == "all":
        step.fit(np.concatenate([x_tr, x_va]))
        x_tr, x_va = step.transform(x_tr), step.transform(x_va)
    else:
        x_tr = step.fit_transform(x_tr)
        x_va = step.fit_transform(x_va) if fit == "refit" else step.transform(x_va)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_x(x_tr), torch.tensor(y_tr), as_x(x_va), torch.tensor(y_va)


def _run(tmp_path, x_tr, y_tr, x_va, y_va, train=None, **kwargs):
    L.seed_everything(0)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None,
                max_epochs=kwargs.pop("max_epochs", 2), **kwargs)
    t.fit(Tabular(x_tr.shape[1], int(y_tr.max()) + 1), train or loader(x_tr, y_tr, 16),
          loader(x_va, y_va, 32, False))
    return [f for f in serious(read_report(t.log_dir), "val-divergence")
            if f["data"].get("pattern") == "refit-transform"]


@pytest.mark.parametrize("data,pipeline,fingerprint", [
    ("breast_cancer", "standard", "standardised"),
    ("wine", "minmax", "min-max [0, 1]"),
    ("breast_cancer", "minmax-sym", "min-max [-1, 1]"),
    ("wine", "pca-whiten", "standardised"),
])
def test_a_transform_refitted_on_validation_fires(tmp_path, data, pipeline, fingerprint):
    found = _run(tmp_path, *_split(data, pipeline, "refit"))
    assert len(found) == 1 and found[0]["severity"] == "warning"
    assert found[0]["data"]["fingerprint"] == fingerprint
    assert "transform(x_val)" in found[0]["advice"]
    assert found[0]["data"]["matching_columns"] >= 6


@pytest.mark.parametrize("data,pipeline", [("breast_cancer", "standard"), ("wine", "minmax"),
                                           ("wine", "pca-whiten"), ("breast_cancer", "minmax-sym")])
@pytest.mark.parametrize("fit", ["train", "all"])
def test_a_transform_fitted_on_training_or_all_rows_is_silent(tmp_path, data, pipeline, fit):
    assert not _run(tmp_path, *_split(data, pipeline, fit), max_epochs=1)


def test_a_validation_pass_cut_short_is_not_judged(tmp_path):
    assert not _run(tmp_path, *_split("breast_cancer", "standard", "refit"), limit_val_batches=3)


def test_a_training_epoch_cut_short_is_not_judged(tmp_path):
    assert not _run(tmp_path, *_split("breast_cancer", "standard", "refit"), limit_train_batches=10)


class _Jittered(Dataset):
    """Training rows with Gaussian noise drawn per access (augmentation)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.g = x, y, torch.Generator().manual_seed(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i] + 0.05 * torch.randn(self.x.shape[1], generator=self.g), self.y[i]


def test_augmented_training_rows_carry_no_fingerprint(tmp_path):
    x_tr, y_tr, x_va, y_va = _split("breast_cancer", "standard", "refit")
    assert not _run(tmp_path, x_tr, y_tr, x_va, y_va, train=DataLoader(_Jittered(x_tr, y_tr), batch_size=16),
                    max_epochs=1)


def test_validating_on_the_training_rows_is_silent(tmp_path):
    x_tr, y_tr, _, _ = _split("wine", "standard", "train")
    assert not _run(tmp_path, x_tr, y_tr, x_tr, y_tr, max_epochs=1)


def _moments(x: torch.Tensor, batch: int) -> torch.Tensor:
    out = None
    for part in x.split(batch):
        out = merge(out, column_moments(part))
    return out


def test_per_batch_normalisation_and_raw_noise_are_not_a_refit():
    g = torch.Generator().manual_seed(0)
    raw_tr, raw_va = torch.randn(640, 8, generator=g) * 2 + 3, torch.randn(128, 8, generator=g) * 2 + 3
    per_batch = lambda x: torch.cat([(p - p.mean(0)) / p.std(0, unbiased=False) for p in x.split(64)])  # noqa: E731
    tr, va = per_batch(raw_tr), per_batch(raw_va)
    firsts = (column_moments(tr[:64]), column_moments(va[:64]))
    assert judge_refit(_moments(tr, 64), 640, _moments(va, 64), 128, firsts, (64, 64)) is None
    assert judge_refit(_moments(raw_tr, 64), 640, _moments(raw_va, 64), 128) is None
    whole = lambda x: (x - x.mean(0)) / x.std(0)  # noqa: E731  fitted on each split: the bug
    assert judge_refit(_moments(whole(raw_tr), 64), 640, _moments(whole(raw_va), 64), 128)["fingerprint"] == (
        "standardised")


def test_binary_and_pixel_columns_are_not_min_max_fingerprints():
    g = torch.Generator().manual_seed(0)
    binary = lambda n: (torch.rand(n, 12, generator=g) < 0.3).float()  # noqa: E731  min 0, max 1 by nature
    assert judge_refit(column_moments(binary(500)), 500, column_moments(binary(100)), 100) is None
    pixels = lambda n: torch.randint(0, 17, (n, 64), generator=g).float() / 16  # noqa: E731
    assert judge_refit(column_moments(pixels(500)), 500, column_moments(pixels(100)), 100) is None


def test_the_documented_tolerances_are_the_module_constants():
    from pathlib import Path

    from lightning_sanity.callbacks import _refit_inputs as RI
    from lightning_sanity.checks import refit_transform as R

    page = (Path(__file__).parents[1] / "docs" / "checks" / "val-divergence.md").read_text()
    assert R.ROUNDOFF == 2.0 ** -13 and "2^-13 of a column's sd" in page
    assert R.EXTREME_ROUNDOFF == 2.0 ** -20 and "2^-20\n  of the range" in page
    assert R.MISS_SHARE == 0.05 and "(5 % may miss" in page
    assert R.MIN_COLUMNS == 2 and R.MIN_VAL_ROWS == 20 and "at least 2 columns, 20 validation rows" in page
    assert R.NOISE_UNITS == 10 and "within 10 times that band" in page
    assert RI.MAX_COLUMNS == 4096 and "to 4096 columns" in page
