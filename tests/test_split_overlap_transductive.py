"""split-overlap on full-batch, transductive training (one graph, split by loss masks): training and validation get
the same single batch, which the check cannot judge and says so (skipped, no finding); a single-batch training loader
that shuffles, passed as the validation loader too, still fires; the multi-batch val-is-train case is in
tests/test_split_overlap.py."""

import lightning as L
import torch
import torch.nn.functional as F
from helpers import LossSteps, digits, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary


class MaskedNodes(LossSteps):
    """Node classification as a GCN trains it: the whole graph in every batch, the loss over the split's mask."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def _loss(self, batch):
        logits = self.net(batch["x"])
        return F.cross_entropy(logits[batch["mask"]], batch["y"][batch["mask"]])


def _graph_loader(x, y, mask):
    return DataLoader([{"x": x, "y": y, "mask": mask}], batch_size=1, collate_fn=lambda items: items[0])


def _fit(tmp_path, model, train, val):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(model, train, val)
    return read_report(t.log_dir)


def test_same_single_batch_split_by_masks_is_not_judged(tmp_path):
    x, y = digits(600)
    order = torch.randperm(600, generator=torch.Generator().manual_seed(0))
    train_mask, val_mask = torch.zeros(600, dtype=torch.bool), torch.zeros(600, dtype=torch.bool)
    train_mask[order[:300]], val_mask[order[300:]] = True, True
    report = _fit(tmp_path, MaskedNodes(), _graph_loader(x, y, train_mask), _graph_loader(x, y, val_mask))
    check = {c["name"]: c for c in report["checks"]}["split-overlap"]
    assert check["status"] == "skipped" and "transductive" in check["detail"]
    assert not serious(report)


def test_shuffled_single_batch_loader_used_for_validation_still_fires(tmp_path):
    from helpers import Classifier

    x, y = digits(300)
    train = DataLoader(TensorDataset(x, y), batch_size=512, shuffle=True)
    report = _fit(tmp_path, Classifier(), train, train)
    (finding,) = serious(report, "split-overlap")
    assert finding["severity"] == "error" and finding["data"]["share"] == 1.0
