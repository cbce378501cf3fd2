"""split-overlap on real Trainers: a split made twice fires, a healthy split of digits, wine and breast cancer stays
silent, and data with genuine duplicates is judged against its own repetition rate."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from helpers import Classifier, breast_cancer, digits, loader, read_report, serious, trainer
from sklearn.model_selection import train_test_split

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.splits import copied_multiplicities, fingerprints, overlap


def _wine() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0), torch.tensor(y)


def _fit(tmp_path, x, y, train_idx, val_idx, classes, epochs=1, **kwargs) -> dict:
    L.seed_everything(0)
    model = Classifier(in_features=x.shape[1], classes=classes,
                       loss_fn=torch.nn.functional.binary_cross_entropy_with_logits if classes == 1 else None)
    if classes == 1:
        model.net[-1] = torch.nn.Linear(32, 1)
        model.forward = lambda inp: model.net(inp)[:, 0]
    t = trainer(tmp_path, [SplitOverlap(**kwargs), SanitySummary(print_summary=False)], logger=None,
                max_epochs=epochs, num_sanity_val_steps=1)
    t.fit(model, loader(x[train_idx], y[train_idx], 64), loader(x[val_idx], y[val_idx], 64, shuffle=False))
    return read_report(t.log_dir)


@pytest.mark.parametrize("data", ["digits", "wine", "breast_cancer"])
def test_healthy_random_split_is_silent(tmp_path, data):
    x, y = {"digits": digits, "wine": _wine, "breast_cancer": breast_cancer}[data]()
    train_idx, val_idx = train_test_split(np.arange(len(x)), test_size=0.2, random_state=0)
    classes = {"digits": 10, "wine": 3, "breast_cancer": 1}[data]
    report = _fit(tmp_path, x, y, train_idx, val_idx, classes)
    status = {c["name"]: c for c in report["checks"]}["split-overlap"]
    assert status["status"] == "pass" and status["detail"].startswith("0 of ")
    assert not serious(report)


def test_split_made_twice_with_different_seeds_fires(tmp_path):
    x, y = digits()
    train_idx, _ = train_test_split(np.arange(len(x)), test_size=0.2, random_state=0)
    _, val_idx = train_test_split(np.arange(len(x)), test_size=0.2, random_state=1)
    report = _fit(tmp_path, x, y, train_idx, val_idx, 10)
    found = serious(report, "split-overlap")
    assert found and found[0]["severity"] == "error"
    assert 0.7 < found[0]["data"]["share"] < 0.9  # about 80 %: the training share of the data
    assert found[0]["data"]["validation_samples"] == len(val_idx)


def test_small_overlap_warns_and_threshold_moves_it(tmp_path):
    x, y = digits()
    train_idx, val_idx = train_test_split(np.arange(len(x)), test_size=0.2, random_state=0)
    leaked = np.concatenate([train_idx, val_idx[:90]])  # a quarter of validation also trains
    report = _fit(tmp_path / "a", x, y, leaked, val_idx, 10)
    found = serious(report, "split-overlap")
    assert found and found[0]["severity"] == "warning" and found[0]["data"]["validation_in_training"] == 90
    tuned = SplitOverlap().set_thresholds({"split-overlap": {"share": 0.3}})
    assert tuned.threshold("split-overlap", "share") == 0.3


def test_genuine_duplicates_are_judged_against_the_repetition_rate(tmp_path):
    # Coarse tabular data: many samples repeat, in training and across the split alike.
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (600, 3), generator=g).float()
    y = (x.sum(1) > 3).long()
    train_idx, val_idx = train_test_split(np.arange(len(x)), test_size=0.2, random_state=0)
    report = _fit(tmp_path, x, y, train_idx, val_idx, 2)
    assert not serious(report, "split-overlap")
    assert "training repeats" in {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]


def test_fingerprints_are_exact_and_cheap():
    x = torch.randn(8, 3, 32, 32)
    f = fingerprints(x)
    assert f.dtype == torch.int64 and f.unique().numel() == 8
    assert torch.equal(fingerprints(x.clone()), f)
    y = x.clone()
    y[3, 2, 31, 31] += 1e-3
    assert (fingerprints(y) != f).tolist() == [False, False, False, True, False, False, False, False]
    assert fingerprints(torch.tensor([[0.0], [-0.0]])).unique().numel() == 1
    assert overlap(f[:4], f) == (4, 4, 0.0)
    with pytest.raises(ValueError, match="get_input"):
        SplitOverlap(get_input="x")


def _oversampled_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = digits()
    keep = (y < 5) | (torch.rand(len(y), generator=torch.Generator().manual_seed(0)) < 0.2)
    x, y = x[keep], y[keep]
    minority = torch.nonzero(y >= 5).flatten()
    return x, y, minority


def test_oversampling_before_the_split_fires_after_it_stays_silent(tmp_path):
    # Copies of digit images repeat in training as coarse data would, but distinct digits never agree on half
    # their pixels: the repeats are copies, not coincidences, and the shared validation samples are leaked.
    x, y, minority = _oversampled_digits()
    rows = np.concatenate([np.arange(len(x))] + [minority.numpy()] * 3)
    perm = np.random.default_rng(1).permutation(len(rows))
    cut = int(0.8 * len(rows))
    before = _fit(tmp_path / "before", x, y, rows[perm[:cut]], rows[perm[cut:]], 10)
    found = serious(before, "split-overlap")
    assert found and found[0]["data"]["coincidence_share"] < 0.05 < found[0]["data"]["training_repeat_share"]
    train_idx, val_idx = train_test_split(np.arange(len(x)), test_size=0.2, random_state=0)
    is_minority = np.isin(train_idx, minority.numpy())
    after_idx = np.concatenate([train_idx] + [train_idx[is_minority]] * 3)
    after = _fit(tmp_path / "after", x, y, after_idx, val_idx, 10)
    assert not serious(after)


def test_inputs_from_a_small_space_drawn_independently_for_each_split_stay_silent(tmp_path):
    # Arithmetic progressions mod 7: 42 distinct inputs far apart from each other (no two agree on half their
    # values), drawn independently for training and validation: every validation input is also a training one,
    # by coincidence, and their multiplicities rise and fall smoothly as independent draws do.
    def progressions(n, seed):
        g = torch.Generator().manual_seed(seed)
        a, b = torch.randint(0, 7, (n, 1), generator=g), torch.randint(1, 7, (n, 1), generator=g)
        return ((a + b * torch.arange(8)) % 7).float(), a[:, 0]

    (x_tr, y_tr), (x_va, y_va) = progressions(1200, 0), progressions(200, 1)
    x, y = torch.cat([x_tr, x_va]), torch.cat([y_tr, y_va])
    report = _fit(tmp_path, x, y, np.arange(1200), np.arange(1200, 1400), 7)
    assert not serious(report, "split-overlap")
    assert copied_multiplicities(fingerprints(x_tr)) is False


def test_rows_hashed_in_gathered_blocks_match_batch_by_batch_hashes(tmp_path):
    """Training rows are hashed every 2048 samples and at a change of width: the figures are the per-batch ones."""
    from lightning_sanity.callbacks._row_blocks import RowBlocks
    from lightning_sanity.checks.splits import fingerprints, split_fingerprints

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 8, generator=gen)
    y = (x[:, 0] > 0).long()
    report = _fit(tmp_path, x, y, np.arange(2600), np.arange(2400, 3000), 2)  # val shares 200 of 600 samples
    (finding,) = serious(report, "split-overlap")
    assert finding["data"]["validation_samples"] == 600 and abs(finding["data"]["share"] - 200 / 600) < 1e-9

    blocks = RowBlocks(halves=True)
    short, wide = torch.randn(1500, 6, generator=gen), torch.randn(1500, 9, generator=gen)
    for batch in (short[:1000], short[1000:], wide[:1000], wide[1000:]):  # a width change, then a full block
        blocks.add(batch)
    blocks.flush()
    assert [len(h) for h in blocks._hashed] == [1500, 1500]
    expected = torch.cat([split_fingerprints(short), split_fingerprints(wide)])
    assert torch.equal(blocks.hashes(), expected)

    targets = RowBlocks(halves=False)  # the (input, target) pairs' targets: one hash per sample
    labels = torch.randint(0, 5, (3000, 2), generator=gen)
    for start in range(0, 3000, 700):
        targets.add(labels[start : start + 700])
    assert torch.equal(targets.hashes(), fingerprints(labels))


@pytest.mark.parametrize("validation", ["out-of-bag", "whole table"])
def test_bootstrap_member_validated_on_rows_it_trained_on_fires(tmp_path, validation):
    """A bagging member trains on a bootstrap (rows drawn with replacement: training repeats about a third of its
    samples, with the smooth multiplicities of independent draws). Breast-cancer measurements never repeat by
    themselves, so the repeats are copies, and validation rows drawn from the whole table are mostly trained on;
    out-of-bag validation shares none."""
    x, y = breast_cancer()
    gen = np.random.default_rng(0)
    boot = gen.integers(0, len(x), len(x))
    out_of_bag = np.setdiff1d(np.arange(len(x)), boot)
    val_idx = out_of_bag if validation == "out-of-bag" else gen.choice(len(x), len(out_of_bag), replace=False)
    report = _fit(tmp_path, x, y, boot, val_idx, 1)
    found = serious(report, "split-overlap")
    if validation == "out-of-bag":
        assert not found
    else:
        assert found and found[0]["data"]["share"] > 0.5 and found[0]["data"]["coincidence_share"] < 0.05
    assert copied_multiplicities(fingerprints(x[boot])) is False  # the rule the measured values stand in for
