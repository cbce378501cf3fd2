"""update-ratio on layers that start at exactly zero (a relative-position bias table, a LoRA B matrix): they have
no scale of their own, so "updates as large as the weights" says nothing about the learning rate there."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from helpers import digits_loaders, fit, read_report, serious
from torch import nn

from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary


class ZeroBiasTable(L.LightningModule):
    """An MLP on digits whose hidden units get an additive bias looked up in a (16, 128) table initialised to zeros,
    as BEiT's relative-position bias is; AdamW with a linear warm-up from 0 over 20 steps."""

    def __init__(self, lr: float = 1e-3, optimizer: str = "adamw") -> None:
        super().__init__()
        self.lr, self.optimizer = lr, optimizer
        self.inp, self.out = nn.Linear(64, 128), nn.Linear(128, 10)
        self.table = nn.Parameter(torch.zeros(16, 128))

    def training_step(self, batch, batch_idx):
        x, y = batch
        slot = (x[:, :4].sum(1) % 16).long()  # a position-like index per sample
        return F.cross_entropy(self.out(F.relu(self.inp(x) + self.table[slot])), y)

    def configure_optimizers(self):
        if self.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.lr)
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr)
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 20))  # from 0, as HF's
        return [opt], [{"scheduler": warmup, "interval": "step"}]


def _report(tmp_path, model):
    L.seed_everything(0)
    train, val = digits_loaders()
    t = fit(model, tmp_path, train, val, callbacks=[NormMonitor(), SanitySummary(print_summary=False)], max_epochs=1)
    return read_report(t.log_dir)


def test_zero_initialised_table_under_warm_up_is_not_too_large(tmp_path):
    assert not serious(_report(tmp_path, ZeroBiasTable()), "update-ratio")


def test_a_far_too_high_learning_rate_still_shows_on_the_other_layers(tmp_path):
    found = serious(_report(tmp_path, ZeroBiasTable(lr=10.0, optimizer="sgd")), "update-ratio")
    assert found and found[0]["data"]["kind"] == "too_large"
    assert "table" not in " ".join(found[0]["data"]["layers"])


def test_measured_rows_of_beit_relative_position_bias_are_not_too_large():
    """The rows measured on HuggingFace BEiT's zero-initialised relative-position bias table (third-party scenario
    `healthy_hf_beit_cls_token_quadrants`, AdamW with warm-up from 0): updates 1.9x and 1.02x the weights on two
    steps while the table grows from zero; a layer with its own scale and the same rows is still too large."""
    from lightning_sanity.checks.norms import update_ratio_verdicts

    weight = torch.tensor([0.0, 0.0, 5.32e-07, 4.28e-06, 1.71e-05])
    update = torch.tensor([0.0, 5.32e-07, 1.92e-06, 4.46e-06, 7.35e-06])
    upd, w = torch.stack([update, update], 1), torch.stack([weight, weight], 1)
    valid = torch.ones(5, 2, dtype=torch.bool)
    assert update_ratio_verdicts(upd, w, valid)["too_large"] == []
    scaled = update_ratio_verdicts(upd, w, valid, zero_start=torch.tensor([True, False]))["too_large"]
    assert [layer for layer, _ in scaled] == [1]
