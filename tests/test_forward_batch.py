"""Models whose ``forward`` takes the whole batch (``def forward(self, batch): return self.model(**batch)``) or a
batch with a leading axis of one (``DataLoader(batch_size=1)`` over pre-batched items, ``squeeze(0)`` in
``training_step``): every check that runs the model runs on them, and eval-mode randomness is seen."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lightning_sanity
from lightning_sanity.forward import model_calls

VOCAB = 12


class MaskDropout(nn.Module):
    """One dropout mask shared over time; ``guard="train"`` is the bug (a bound method, always truthy)."""

    def __init__(self, p: float, guard: str) -> None:
        super().__init__()
        self.p, self.guard = p, guard

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not getattr(self, self.guard):
            return x
        return x * x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)


class Tagger(nn.Module):
    def __init__(self, guard: str) -> None:
        super().__init__()
        self.emb, self.drop = nn.Embedding(VOCAB, 16), MaskDropout(0.3, guard)
        self.rnn, self.head = nn.GRU(16, 16, batch_first=True), nn.Linear(16, VOCAB)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor = None) -> dict:
        logits = self.head(self.rnn(self.drop(self.emb(input_ids)))[0])
        loss = None if labels is None else F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1))
        return {"loss": loss, "logits": logits}


def tokens(n: int, seed: int) -> torch.Tensor:
    """Sequences whose next token is the current one plus one (mod VOCAB): a learnable rule."""
    start = torch.randint(0, VOCAB, (n, 1), generator=torch.Generator().manual_seed(seed))
    return (start + torch.arange(9)) % VOCAB


class DictBatches(L.LightningModule):
    """HF-style wrapper: the batch is a dict with the labels in it, ``forward`` takes the batch."""

    def __init__(self, guard: str) -> None:
        super().__init__()
        self.model = Tagger(guard)

    def forward(self, batch: dict) -> dict:
        return self.model(**batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch)["loss"]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Stacked(Dataset):
    """Items that are whole batches (a pre-batched stream): a DataLoader of batch size 1 adds an axis of one."""

    def __init__(self, seq: torch.Tensor) -> None:
        self.seq = seq

    def __len__(self) -> int:
        return self.seq.shape[0] // 16

    def __getitem__(self, i: int) -> tuple:
        chunk = self.seq[i * 16:(i + 1) * 16]
        return chunk[:, :-1], chunk[:, 1:]


class PreBatched(L.LightningModule):
    def __init__(self, guard: str) -> None:
        super().__init__()
        self.model = Tagger(guard)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["logits"]

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, y = (t.squeeze(0) for t in batch)
        return F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _run(tmp_path, model: L.LightningModule, train: DataLoader) -> dict:
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(), max_epochs=2)
    t.fit(model, train)
    return read_report(t.log_dir)


def _dict_loader() -> DataLoader:
    seq = tokens(192, 0)
    items = [{"input_ids": s[:-1], "labels": s[1:]} for s in seq]
    return DataLoader(items, batch_size=32, shuffle=True)


def _statuses(report: dict) -> dict:
    return {c["name"]: c["status"] for c in report["checks"]}


@pytest.mark.parametrize("guard", ["training", "train"])
def test_forward_taking_the_whole_dict_batch_is_checked(tmp_path, guard):
    report = _run(tmp_path, DictBatches(guard), _dict_loader())
    status = _statuses(report)
    assert all(status[c] != "skipped" for c in ("constant-output", "batch-mixing", "prediction-jitter")), status
    found = {f["check"] for f in serious(report)}
    assert found == ({"train-mode"} if guard == "train" else set()), serious(report)


@pytest.mark.parametrize("guard", ["training", "train"])
def test_prebatched_stream_with_a_leading_axis_of_one_is_evaluated(tmp_path, guard):
    report = _run(tmp_path, PreBatched(guard), DataLoader(Stacked(tokens(192, 1)), batch_size=1))
    assert _statuses(report)["prediction-jitter"] != "skipped", report["checks"]
    found = {f["check"] for f in serious(report)}
    assert found == ({"train-mode"} if guard == "train" else set()), serious(report)


class NoForward(L.LightningModule):
    """The HuggingFace way without a ``forward`` of its own: ``training_step`` calls ``self.model(**batch)``."""

    def __init__(self, guard: str, time_first: bool = False) -> None:
        super().__init__()
        self.model = Tagger(guard)
        if time_first:  # a GRU that takes time first: the batch's own layout is not what the model sees
            self.model.rnn = nn.GRU(16, 16)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.model(**batch)["loss"]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("guard", ["training", "train"])
def test_module_without_forward_around_one_model_is_checked_through_it(tmp_path, guard):
    report = _run(tmp_path, NoForward(guard), _dict_loader())
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("constant-output", "batch-mixing", "prediction-jitter"):
        assert checks[name]["status"] != "skipped", checks[name]
    found = {f["check"] for f in serious(report)}
    assert found == ({"train-mode"} if guard == "train" else set()), serious(report)


def test_module_without_forward_around_a_time_first_model_is_not_guessed(tmp_path):
    report = _run(tmp_path, NoForward("training", time_first=True), _dict_loader())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["batch-mixing"]["status"] == "skipped" and "defines no `forward`" in checks["batch-mixing"]["detail"]
    assert not serious(report, "batch-mixing")


class TwoTaskGate(L.LightningModule):
    """Two task heads over gated experts, ``forward(users, feats)`` on a batch ``(users, feats, clicked, rating)``:
    one target per task at the end. ``dim=0`` normalises each gate over the batch (the bug)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.user = nn.Embedding(30, 8)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(12, 16), nn.ReLU()) for _ in range(3))
        self.gates = nn.ModuleList(nn.Linear(12, 3) for _ in range(2))
        self.heads = nn.ModuleList(nn.Linear(16, 1) for _ in range(2))

    def forward(self, users: torch.Tensor, feats: torch.Tensor) -> tuple:
        h = torch.cat([self.user(users), feats], 1)
        experts = torch.stack([e(h) for e in self.experts], 1)
        outs = [head((torch.softmax(gate(h), dim=self.dim).unsqueeze(-1) * experts).sum(1)).squeeze(-1)
                for gate, head in zip(self.gates, self.heads)]
        return outs[0], outs[1]

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        users, feats, clicked, rating = batch
        click_logit, rating_pred = self(users, feats)
        return F.binary_cross_entropy_with_logits(click_logit, clicked) + F.mse_loss(rating_pred, rating)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _two_task_loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    users, feats = torch.randint(0, 30, (512,), generator=g), torch.randn(512, 4, generator=g)
    score = feats[:, 0] + (users % 3).float() - 1
    clicked = (torch.rand(512, generator=g) < torch.sigmoid(score)).float()
    data = TensorDataset(users, feats, clicked, score + 0.3 * torch.randn(512, generator=g))
    return DataLoader(data, batch_size=64, shuffle=True)


@pytest.mark.parametrize("dim", [0, -1])
def test_multi_task_batch_calls_forward_without_its_trailing_targets(tmp_path, dim):
    batch = next(iter(_two_task_loader()))
    assert [c.how for c in model_calls(TwoTaskGate(dim), batch[0], batch)] == ["pl_module(*batch[:-2])"]
    report = _run(tmp_path, TwoTaskGate(dim), _two_task_loader())
    assert all(_statuses(report)[c] != "skipped" for c in ("constant-output", "batch-mixing")), report["checks"]
    found = {f["check"] for f in serious(report)}
    assert found == ({"batch-mixing"} if dim == 0 else set()), serious(report)
