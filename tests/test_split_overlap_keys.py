"""split-overlap on batches of bare ids: one integer per sample and no target (a recommender scoring held-out
interactions of its training users, the ratings held in the model) is not judged, since the same user on both sides is
the design; ids that come with their labels, copied into validation, still fire."""

import lightning as L
import torch
import torch.nn.functional as F
from helpers import LossSteps, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary

USERS, ITEMS = 300, 50


class HeldOutRatings(LossSteps):
    """Matrix factorisation over whole user rows: a batch is user ids; training fits the training interactions,
    validation the held-out ones, both looked up in buffers."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        scores = torch.randn(USERS, 4, generator=g) @ torch.randn(4, ITEMS, generator=g)
        liked = (scores > 1).float()
        held = (torch.rand(USERS, ITEMS, generator=g) < 0.2) & (liked > 0)
        self.register_buffer("train_rows", liked.masked_fill(held, 0.0))
        self.register_buffer("val_rows", held.float())
        self.user, self.item = nn.Embedding(USERS, 8), nn.Embedding(ITEMS, 8)

    def _loss(self, batch):
        (users,) = batch
        rows = self.train_rows if self.training else self.val_rows
        return F.binary_cross_entropy_with_logits(self.user(users) @ self.item.weight.T, rows[users])


def _fit(tmp_path, model, train, val):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(model, train, val)
    return read_report(t.log_dir)


def test_same_users_scored_on_held_out_interactions_is_not_judged(tmp_path):
    users = TensorDataset(torch.arange(USERS))
    report = _fit(tmp_path, HeldOutRatings(), DataLoader(users, batch_size=32, shuffle=True),
                  DataLoader(users, batch_size=100))
    check = {c["name"]: c for c in report["checks"]}["split-overlap"]
    assert check["status"] == "skipped" and "one integer id per sample" in check["detail"]
    assert not serious(report)


class NodeIds(LossSteps):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(USERS, 3)

    def _loss(self, batch):
        ids, y = batch
        return F.cross_entropy(self.table(ids), y)


def test_ids_with_their_labels_copied_into_validation_still_fire(tmp_path):
    ids = torch.arange(USERS)
    y = torch.randint(0, 3, (USERS,), generator=torch.Generator().manual_seed(1))
    train = DataLoader(TensorDataset(ids, y), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(ids[:100], y[:100]), batch_size=50)
    report = _fit(tmp_path, NodeIds(), train, val)
    assert serious(report, "split-overlap")
