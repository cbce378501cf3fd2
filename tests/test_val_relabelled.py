"""val-divergence on a real Trainer: multi-label targets whose validation columns were encoded with a vocabulary
rebuilt on the validation split fire (the columns' positive rates are the training ones in another order); the
same run with one vocabulary stays silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import loader, read_report, serious, trainer

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence
from lightning_sanity.checks.relabelled import column_counts, judge_relabelled


class Tagger(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.binary_cross_entropy_with_logits(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.binary_cross_entropy_with_logits(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _tags(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    proj = torch.randn(16, 5, generator=torch.Generator().manual_seed(1)) / 4
    x = torch.randn(n, 16, generator=g)
    return x, ((x @ proj) > torch.tensor([0.0, 0.4, 0.8, 1.2, -0.3])).float()


@pytest.mark.parametrize("rebuilt", [True, False])
def test_validation_vocabulary_rebuilt_fires_one_vocabulary_is_silent(tmp_path, rebuilt):
    g = torch.Generator().manual_seed(0)
    (x_tr, y_tr), (x_va, y_va) = _tags(800, g), _tags(300, g)
    if rebuilt:  # the validation split numbers the tags in its own order of first appearance
        y_va = y_va[:, [0, 4, 1, 3, 2]]
    L.seed_everything(0)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(Tagger(), loader(x_tr, y_tr, 64), loader(x_va, y_va, 100, False))
    found = serious(read_report(t.log_dir), "val-divergence")
    if rebuilt:
        assert found and found[0]["severity"] == "error" and found[0]["data"]["pattern"] == "relabelled-columns"
        assert "vocabulary" in found[0]["advice"]
    else:
        assert not found


def test_a_shift_of_the_rates_is_not_a_relabelling():
    g = torch.Generator().manual_seed(0)
    train = column_counts((torch.rand(2000, 3, generator=g) < torch.tensor([0.5, 0.3, 0.1])).float())
    shifted = column_counts((torch.rand(500, 3, generator=g) < torch.tensor([0.3, 0.3, 0.1])).float())
    assert judge_relabelled(train, shifted) is None
    assert column_counts(torch.rand(10, 3)) is not None and judge_relabelled(train, column_counts(torch.rand(500, 3))) is None
