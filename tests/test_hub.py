"""The suite's training-batch hooks fused into one Lightning dispatch (callbacks/_hub.py): same calls, same order."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks._hub import Hub
from lightning_sanity.callbacks.base import SanityCallback
from lightning_sanity.callbacks.summary import SanitySummary


class Recorder(SanityCallback):
    """Notes every training-batch hook; retires ``on_train_batch_start`` after ``retire_after`` batches."""

    def __init__(self, name: str, calls: list, retire_after: int = 0) -> None:
        self.name, self.calls, self.retire_after, self.seen = name, calls, retire_after, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.calls.append((self.name, "start", batch_idx))
        self.seen += 1
        if self.retire_after and self.seen >= self.retire_after:
            self.retire("on_train_batch_start")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.calls.append((self.name, "opt", trainer.global_step))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.calls.append((self.name, "end", batch_idx))


class User(Callback):
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.calls.append(("user", "end", batch_idx))


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(callbacks: list) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    trainer = L.Trainer(max_epochs=1, callbacks=callbacks, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(Tiny(), data)


def test_fused_hooks_keep_order_retirement_and_user_callbacks() -> None:
    def run(with_summary: bool) -> list:
        calls: list = []
        cbs = [Recorder("a", calls, retire_after=2), Recorder("b", calls), User(calls), Recorder("c", calls),
               Recorder("d", calls, retire_after=1)]
        _fit([*cbs, SanitySummary(print_summary=False)] if with_summary else cbs)
        # Every hook is given back to Lightning after the fit: no instance attribute left but the retired ones.
        assert "_hub" not in cbs[0].__dict__ and cbs[0].__dict__.get("on_train_batch_start", 1) is None
        assert "on_before_optimizer_step" not in cbs[0].__dict__ and "on_train_batch_end" not in cbs[1].__dict__
        return calls

    fused, plain = run(True), run(False)
    assert fused == plain
    assert [c for c in fused if c[2] == 3 and c[1] == "end"] == [("a", "end", 3), ("b", "end", 3), ("user", "end", 3),
                                                                ("c", "end", 3), ("d", "end", 3)]


def test_install_fuses_runs_only() -> None:
    calls: list = []
    a, b, u, c = Recorder("a", calls), Recorder("b", calls), User(calls), Recorder("c", calls)
    hub = Hub.install([a, b, u, c], lambda cb: isinstance(cb, SanityCallback))
    assert b.on_train_batch_end is None and callable(a.on_train_batch_end) and callable(c.on_train_batch_end)
    a.on_train_batch_end(None, None, None, None, 7)
    assert calls == [("a", "end", 7), ("b", "end", 7)]
    hub.remove()
    assert "on_train_batch_end" not in a.__dict__ and "on_train_batch_end" not in b.__dict__
