"""split-overlap on a training loader reloaded later: a DataModule that adds the validation samples to training from
some epoch on (``ConcatDataset([train, val])`` with ``reload_dataloaders_every_n_epochs=1``) fires, naming the
epoch; one that grows its training set with fresh samples of its own stays silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import LossSteps, read_report, serious, trainer
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary


class Regressor(LossSteps):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))

    def _loss(self, batch):
        x, y = batch
        return nn.functional.mse_loss(self.net(x)[:, 0], y)


class GrowingData(L.LightningDataModule):
    def __init__(self, late: str) -> None:
        super().__init__()
        x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
        x, y = (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()
        self.train, self.extra = TensorDataset(x[:250], y[:250]), TensorDataset(x[250:350], y[250:350])
        self.val = TensorDataset(x[350:], y[350:])
        self.late = late

    def train_dataloader(self):
        late = self.val if self.late == "validation" else self.extra
        data = ConcatDataset([self.train, late]) if self.trainer.current_epoch >= 2 else self.train
        return DataLoader(data, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=64)


@pytest.mark.parametrize("late", ["validation", "fresh"])
def test_validation_samples_joining_training_later_fire(tmp_path, late):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=4,
                reload_dataloaders_every_n_epochs=1)
    t.fit(Regressor(), datamodule=GrowingData(late))
    found = serious(read_report(t.log_dir), "split-overlap")
    if late == "fresh":
        assert not found, found
        return
    assert found and found[0]["data"]["epoch"] == 2 and found[0]["data"]["share"] == 1.0, found
    assert "From epoch 2 on" in found[0]["message"]
