"""split-overlap on dense targets: a denoiser whose noisy copies of each clean digit were made before a random split
fires (every validation target is a training target, though no input repeats); the same copies made after the
split, a plain autoencoder, and targets that are one of 10 class templates (shared by design) stay silent."""

from __future__ import annotations

import lightning as L
import torch
from helpers import LossSteps, read_report, serious, trainer
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks._target_copies import dense_target, judge_targets
from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import splits as S


class Denoiser(LossSteps):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64), nn.Sigmoid())

    def _loss(self, batch):
        noisy, clean = batch
        return nn.functional.mse_loss(self(noisy).view_as(clean), clean)

    def forward(self, x):
        return self.net(x)


def _digits(n=400):
    d = load_digits()
    return torch.tensor(d.images[:n], dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(d.target[:n])


def _noisy(clean, copies=5, seed=18):
    clean = clean.repeat(copies, 1, 1, 1)
    g = torch.Generator().manual_seed(seed)
    return (clean + 0.5 * torch.randn(clean.shape, generator=g)).clamp(0, 1), clean


def _split(n, share=0.2):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    cut = int(share * n)
    return order[cut:], order[:cut]


def _fit(tmp_path, train, val):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                num_sanity_val_steps=1)
    t.fit(Denoiser(), DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
          DataLoader(TensorDataset(*val), batch_size=256))
    return read_report(t.log_dir)


def _detail(report):
    return {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]


def test_noisy_copies_before_split_fire_on_targets(tmp_path):
    noisy, clean = _noisy(_digits()[0])
    tr, va = _split(len(noisy))
    found = serious(_fit(tmp_path, (noisy[tr], clean[tr]), (noisy[va], clean[va])), "split-overlap")
    assert found and found[0]["severity"] == "error"
    assert "validation_targets_in_training" in found[0]["data"] and found[0]["data"]["share"] > 0.9
    assert "targets of validation samples" in found[0]["message"]


def test_noisy_copies_after_split_stay_silent(tmp_path):
    clean = _digits()[0]
    tr, va = _split(len(clean))
    report = _fit(tmp_path, _noisy(clean[tr]), _noisy(clean[va], seed=19))
    assert not serious(report, "split-overlap")
    assert "as targets: 0 of" in _detail(report)  # judged, and no validation target is in training


def test_plain_autoencoder_stays_silent(tmp_path):
    x = _digits(1000)[0]
    tr, va = _split(len(x))
    assert not serious(_fit(tmp_path, (x[tr], x[tr]), (x[va], x[va])), "split-overlap")


def test_class_templates_shared_by_design_stay_silent(tmp_path):
    # Each noisy digit's target is its class's mean image: 10 distinct targets, in both splits by design.
    x, y = _digits(1000)
    templates = torch.stack([x[y == c].mean(0) for c in range(10)])
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    tr, va = _split(len(x))
    report = _fit(tmp_path, (noisy[tr], templates[y[tr]]), (noisy[va], templates[y[va]]))
    assert not serious(report, "split-overlap")


def test_dense_target_reads_signals_not_labels():
    assert dense_target(torch.rand(8, 1, 8, 8))
    assert not dense_target(torch.randint(0, 2, (8, 1, 8, 8)).float())  # a mask
    assert not dense_target(torch.rand(8, 4))  # a small regression head
    assert not dense_target(torch.randint(0, 9, (8, 32)))  # token ids


def test_many_templates_are_excused_by_coincidence():
    # Templates drawn i.i.d. (measured values): 40 are too few to judge; 300 repeat smoothly (no ceiling), so their
    # repeats are draws, not copies, and the training repeat share excuses the overlap.
    g = torch.Generator().manual_seed(1)
    templates = torch.rand(40, 64, generator=g)
    pick = torch.randint(0, 40, (2500,), generator=g)
    train, val = S.split_fingerprints(templates[pick[:2000]]), S.fingerprints(templates[pick[2000:]])
    assert judge_targets(train, val) is None  # fewer than MIN_DISTINCT distinct validation targets
    many = torch.rand(300, 64, generator=g)[torch.randint(0, 300, (2500,), generator=g)]
    result = judge_targets(S.split_fingerprints(many[:2000]), S.fingerprints(many[2000:]))
    assert result is not None and result["share"] > 0.9 and result["excess"] < 0.1
