"""split-overlap on (input, target) pairs when the input alone is an id that training repeats: a leave-one-out
recommender whose training pairs still hold the held-out clicks fires; the correct split (held-out clicks removed)
stays silent, though the user ids repeat in both."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import LossSteps, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary

USERS, ITEMS, CLICKS = 100, 80, 8


class BPR(LossSteps):
    def __init__(self):
        super().__init__()
        self.users, self.items = nn.Embedding(USERS, 16), nn.Embedding(ITEMS, 16)

    def _loss(self, batch):
        u, pos, neg = batch
        score = lambda i: (self.users(u) * self.items(i)).sum(-1)
        return -F.logsigmoid(score(pos) - score(neg)).mean()


def _loaders(leak):
    g = torch.Generator().manual_seed(0)
    history = torch.stack([torch.randperm(ITEMS, generator=g)[:CLICKS] for _ in range(USERS)])
    kept = history if leak else history[:, :-1]  # the last click of each user is held out for validation
    users = torch.arange(USERS).repeat_interleave(kept.shape[1])
    train = TensorDataset(users, kept.reshape(-1), torch.randint(0, ITEMS, (users.numel(),), generator=g))
    val = TensorDataset(torch.arange(USERS), history[:, -1], torch.randint(0, ITEMS, (USERS,), generator=g))
    return DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=50)


@pytest.mark.parametrize("leak", [True, False], ids=["held-out-clicks-in-training", "leave-one-out"])
def test_pairs_judge_when_the_inputs_are_ids(tmp_path, leak):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1)
    t.fit(BPR(), *_loaders(leak))
    report = read_report(t.log_dir)
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "(input, target) pairs" in detail
    found = serious(report, "split-overlap")
    if leak:
        assert len(found) == 1 and found[0]["data"]["unit"] == "(input, target) pairs"
        assert found[0]["data"]["share"] == 1.0 and "held-out" in found[0]["advice"]
    else:
        assert found == []


class Ratings(torch.utils.data.Dataset):
    """Dict samples whose keys name no input: ``{"user", "item", "target"}`` (a rating per distinct pair)."""

    def __init__(self, users, items, ratings):
        self.users, self.items, self.ratings = users, items, ratings

    def __len__(self):
        return len(self.ratings)

    def __getitem__(self, i):
        return {"user": self.users[i], "item": self.items[i], "target": self.ratings[i]}


class MF(LossSteps):
    def __init__(self):
        super().__init__()
        self.users, self.items = nn.Embedding(USERS, 8), nn.Embedding(ITEMS, 8)

    def _loss(self, batch):
        pred = (self.users(batch["user"]) * self.items(batch["item"])).sum(-1)
        return F.mse_loss(pred, batch["target"])


@pytest.mark.parametrize("twice", [True, False], ids=["split-twice", "split-once"])
def test_dict_batches_of_ids_are_judged_as_all_ids_together(tmp_path, twice):
    g = torch.Generator().manual_seed(0)
    pairs = torch.randperm(USERS * ITEMS, generator=g)[:2000]
    data = Ratings(pairs // ITEMS, pairs % ITEMS, torch.randn(2000, generator=g))
    split = lambda seed: torch.utils.data.random_split(data, [1600, 400], torch.Generator().manual_seed(seed))
    train, val = split(0)
    if twice:  # validation drawn from a second split: about 80 % of its rows are training rows
        val = split(1)[1]
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1)
    t.fit(MF(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=100))
    report = read_report(t.log_dir)
    status = {c["name"]: c["status"] for c in report["checks"]}["split-overlap"]
    found = serious(report, "split-overlap")
    if twice:
        assert len(found) == 1 and found[0]["data"]["unit"] == "samples" and found[0]["data"]["share"] > 0.6
    else:
        assert status == "pass" and found == []
