"""loss-trend's dropout-noise verdict on real Trainers: a drop probability of 0.9 where 0.1 was meant leaves the
loss barely below the best constant while the masks cost more than that at initialisation; the same network with
a healthy p=0.5 stays silent."""

from __future__ import annotations

import lightning as L
import pytest
from helpers import Classifier, digits, loader, read_report, serious, trainer
from torch import nn

import lightning_sanity
from lightning_sanity.checks.dropout_noise import judge_dropout_noise


def _net(p: float) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(p), nn.Linear(128, 64), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(64, 10))


@pytest.mark.parametrize("p", [0.9, 0.5])
def test_dropout_p_typo_is_named_by_loss_trend(tmp_path, p):
    x, y = digits()
    x = (x - 0.3) / 0.4  # roughly standardized pixels
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=4)
    t.fit(Classifier(net=_net(p), lr=2e-3), loader(x[:1400], y[:1400], 32), loader(x[1400:], y[1400:], 200, False))
    found = [f for f in serious(read_report(t.log_dir), "loss-trend") if f["data"].get("dropout_p") is not None]
    if p == 0.9:
        assert found and found[0]["data"]["dropout_cost"] > found[0]["data"]["gain_below_baseline"]
        assert "probability to DROP" in found[0]["advice"]
    else:
        assert not found


def test_dropout_noise_needs_a_cost_beyond_the_baseline_margin():
    # A cost within one batch's sampling noise at initialisation (2 % of ln 10) is not evidence, however little
    # the run gained.
    assert judge_dropout_noise(tail=2.25, baseline=2.3, start_train=2.35, start_eval=2.30, dropout_p=0.5) is None
    assert judge_dropout_noise(tail=2.25, baseline=2.3, start_train=2.6, start_eval=2.30, dropout_p=0.8) is not None
    assert judge_dropout_noise(tail=2.25, baseline=None, start_train=2.6, start_eval=2.30, dropout_p=0.8) is None


def test_dropout_noise_blames_only_a_drop_probability_above_one_half():
    # healthy_diabetes_categorical_embeddings_datamodule_plateau at seed + 13: p = 0.1, an MSE head whose untrained
    # output dropout moved by 0.92 while training gained 0.71 below the constant, and the model trained fine
    assert judge_dropout_noise(tail=0.348, baseline=1.061, start_train=1.902, start_eval=0.985, dropout_p=0.1) is None
    assert judge_dropout_noise(tail=0.348, baseline=1.061, start_train=1.902, start_eval=0.985, dropout_p=0.9)
