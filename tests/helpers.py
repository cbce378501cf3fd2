"""Shared test harness: real data, tiny real models, real Trainers in tmp_path, reports and event files read back.

Classes used under ``ddp_spawn`` live here (a module importable by name), not inside test files.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Optional

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity import load_report

_CHECK_REPORT = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_report.py"


# --------------------------------------------------------------------------- data (real, bundled with sklearn)


def digits(n: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's digits: 1797 8x8 images scaled to [0, 1] as 64 features, labels 0..9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    return (x[:n], y[:n]) if n else (x, y)


def diabetes() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's diabetes regression set: 442 x 10 standardized features, target in roughly 25..346."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    return x, torch.tensor(d.target, dtype=torch.float32)


def breast_cancer() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's breast cancer set: 569 x 30 standardized features, binary labels (float)."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    return x, torch.tensor(d.target, dtype=torch.float32)


def tagged_tokens(n: int = 128, length: int = 12, vocab: int = 20, tags: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, tags)`` of shape ``(n, length)``: random token ids whose tag is the id modulo ``tags``, a learnable
    per-token rule for sequence taggers."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (n, length), generator=gen)
    return ids, ids % tags


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, shuffle: bool = True, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)


def digits_loaders(batch_size: int = 64, n: Optional[int] = None) -> tuple[DataLoader, DataLoader]:
    x, y = digits(n)
    split = int(len(x) * 0.8)
    return loader(x[:split], y[:split], batch_size), loader(x[split:], y[split:], batch_size, shuffle=False)


# --------------------------------------------------------------------------- models


class LossSteps(L.LightningModule):
    """Training and validation steps (``val_loss`` logged) and Adam at 1e-2 around the subclass's ``_loss(batch)``."""

    def _loss(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._loss(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Classifier(L.LightningModule):
    """A small classifier whose network, loss, optimizer and learning rate tests can swap."""

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        lr: float = 1e-2,
        optimizer: str = "adam",
        loss_fn: Optional[Callable] = None,
        in_features: int = 64,
        classes: int = 10,
    ) -> None:
        super().__init__()
        self.net = net if net is not None else nn.Sequential(
            nn.Linear(in_features, 32), nn.ReLU(), nn.Linear(32, classes)
        )
        self.lr = lr
        self.optimizer_name = optimizer
        self.loss_fn = loss_fn if loss_fn is not None else nn.functional.cross_entropy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", self.loss_fn(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class CrashingClassifier(Classifier):
    """Raises ``exc`` from ``training_step`` at global step ``at_step``."""

    def __init__(self, exc: BaseException, at_step: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exc = exc
        self.at_step = at_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.at_step:
            raise self.exc
        return super().training_step(batch, batch_idx)


# --------------------------------------------------------------------------- running and reading back


def trainer(tmp_path: Path, callbacks: Optional[list] = None, logger: Any = "tensorboard", **kwargs: Any) -> L.Trainer:
    """A quiet CPU Trainer writing under ``tmp_path``; ``logger`` is "tensorboard", "csv", "both", None or a logger."""
    if logger == "tensorboard":
        logger = TensorBoardLogger(tmp_path, name="logs")
    elif logger == "csv":
        logger = CSVLogger(tmp_path, name="csv")
    elif logger == "both":
        logger = [TensorBoardLogger(tmp_path, name="logs"), CSVLogger(tmp_path, name="csv")]
    elif logger is None:
        logger = False
    settings: dict[str, Any] = dict(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=5,
        default_root_dir=tmp_path,
    )
    settings.update(kwargs)
    if settings.get("strategy") == "ddp_spawn":
        settings["strategy"] = SpawnDDP()
    return L.Trainer(callbacks=callbacks or [], logger=logger, **settings)


class SpawnDDP(DDPStrategy):
    """``strategy="ddp_spawn"`` whose workers close their gloo process group before they exit.

    A worker that leaves its process group to interpreter shutdown can abort ("terminate called without an active
    exception") while the other rank still talks to it; CI saw this once in a few hundred runs.
    """

    def __init__(self) -> None:
        super().__init__(start_method="spawn")

    def _configure_launcher(self) -> None:
        self._launcher = _ClosingLauncher(self, start_method="spawn")


class _ClosingLauncher(_MultiProcessingLauncher):
    def _wrapping_function(self, *args: Any, **kwargs: Any) -> None:
        super()._wrapping_function(*args, **kwargs)
        if torch.distributed.is_initialized():
            # Every rank has left fit here; the barrier keeps one rank from closing while the other still reads.
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def fit(
    model: L.LightningModule,
    tmp_path: Path,
    train: Any = None,
    val: Any = None,
    callbacks: Optional[list] = None,
    **kwargs: Any,
) -> L.Trainer:
    """Fit ``model`` (on digits by default) with ``callbacks`` (the full default suite by default)."""
    import lightning_sanity

    if train is None:
        train, val_default = digits_loaders()
        val = val if val is not None else val_default
    t = trainer(tmp_path, callbacks if callbacks is not None else lightning_sanity.default_callbacks(), **kwargs)
    t.fit(model, train, val)
    return t


def fit_report(tmp_path: Path, model: L.LightningModule, train: Any, callbacks: list, raises: Any = None,
               **kwargs: Any) -> dict:
    """Fit ``model`` on ``train`` with ``callbacks`` (the fit must raise ``raises`` if given); the parsed report."""
    t = trainer(tmp_path, callbacks, **kwargs)
    if raises:
        with pytest.raises(raises):
            t.fit(model, train)
    else:
        t.fit(model, train)
    return read_report(t.log_dir)


def report_problems(report: dict) -> list[str]:
    """Problems of a report against the contract, by ../shared/tools/check_report.py when it is there."""
    if not _CHECK_REPORT.is_file():
        return [] if report.get("schema") == 1 else ["schema is not 1"]
    spec = importlib.util.spec_from_file_location("check_report", _CHECK_REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.problems(report)


def read_report(log_dir: Any) -> dict:
    """Load a run's summary.json and assert it validates against the contract."""
    report = load_report(log_dir)
    problems = report_problems(report)
    assert not problems, problems
    json.dumps(report)
    return report


def serious(report: dict, check: Optional[str] = None) -> list[dict]:
    """Warning and error findings, optionally of one check."""
    return [
        f for f in report["findings"]
        if f["severity"] in ("warning", "error") and (check is None or f["check"] == check)
    ]


def events(log_dir: Any):
    """TensorBoard's own EventAccumulator over a run folder, fully loaded (nothing sampled away)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def text_summaries(log_dir: Any, tag: str) -> list[str]:
    """The strings written with ``add_text`` under ``tag`` (TensorBoard stores them as tensor events)."""
    from tensorboard.util import tensor_util

    acc = events(log_dir)
    return [tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in acc.Tensors(tag)]


class ProbeCheck:
    """Factory for a real SanityCallback that reports one finding per training batch (for harness tests)."""

    @staticmethod
    def make(check: str = "loss-trend", severity: str = "warning", only_rank: Optional[int] = None):
        from lightning_sanity.callbacks.base import SanityCallback

        return _Probe(check, severity, only_rank)


from lightning_sanity.callbacks.base import SanityCallback as _SanityCallback  # noqa: E402


class _Probe(_SanityCallback):
    checks = ("loss-trend",)

    def __init__(self, check: str, severity: str, only_rank: Optional[int]) -> None:
        self.check, self.severity, self.only_rank = check, severity, only_rank
        self.checks = (check,)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.only_rank is None or trainer.global_rank == self.only_rank:
            self.report(trainer, self.check, self.severity, f"probe finding on rank {trainer.global_rank}",
                        "nothing to try", where="net.0", batch_idx=batch_idx,
                        data={"rank": trainer.global_rank}, key="probe")
