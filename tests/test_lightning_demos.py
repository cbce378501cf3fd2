"""Lightning's own ``BoringModel`` (``lightning.pytorch.demos.boring_classes``), as users meet it in Lightning's
docs and bug reports.

As shipped it diverges: SGD at lr 0.1 on batches of one 32-wide standard-normal sample multiplies the error by
about ``1 - 0.1 x ||x||^2 = -2.2`` per step, and the loss climbs from 0.56 to about 1e4 in one epoch. At lr 0.01
it learns its constant target, with the noisy losses of one-sample batches (a loss-trend judgement that read a
low first batch as "the start" called that an early explosion).
"""

import lightning as L
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

import lightning_sanity

from helpers import read_report, serious, trainer


class StableBoringModel(BoringModel):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.01)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)]


def test_boring_model_as_shipped_diverges_and_is_told(tmp_path):
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), max_epochs=1)
    t.fit(BoringModel())
    trend = serious(read_report(t.log_dir), "loss-trend")
    assert trend and trend[0]["data"]["tail_median"] > 100 * trend[0]["data"]["start"]


def test_boring_model_at_a_stable_lr_stays_silent(tmp_path):
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), max_epochs=3)
    t.fit(StableBoringModel())
    report = read_report(t.log_dir)
    assert serious(report) == [], [f["message"] for f in serious(report)]
