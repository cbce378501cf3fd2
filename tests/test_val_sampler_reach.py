"""val-divergence's sampler-reach pattern on real Trainers: a WeightedRandomSampler given one weight per class
(it then draws only the first rows of the dataset) fires; the same sampler given one weight per sample is silent."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from helpers import Classifier, digits, loader, read_report, serious, trainer
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence


def _fit(tmp_path, per_class: bool) -> dict:
    x, y = digits(600)
    tr, va = train_test_split(np.arange(len(x)), test_size=0.25, random_state=0)
    class_weights = 1.0 / torch.bincount(y[tr]).double()
    weights = class_weights if per_class else class_weights[y[tr]]
    sampler = WeightedRandomSampler(weights, num_samples=len(tr), generator=torch.Generator().manual_seed(0))
    L.seed_everything(0)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=3)
    t.fit(Classifier(), DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, sampler=sampler),
          loader(x[va], y[va], 256, False))
    return read_report(t.log_dir)


def test_weighted_sampler_given_class_weights_fires(tmp_path):
    (finding,) = serious(_fit(tmp_path, per_class=True), "val-divergence")
    assert finding["severity"] == "error" and finding["data"]["pattern"] == "sampler-reach"
    assert finding["data"]["reachable_rows"] == 10 and finding["data"]["dataset_rows"] == 450
    assert "one weight per training sample" in finding["advice"]


def test_weighted_sampler_given_sample_weights_is_silent(tmp_path):
    assert not serious(_fit(tmp_path, per_class=False), "val-divergence")
