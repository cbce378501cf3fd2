"""Overhead of the sanity suite per training step, on CPU, against bare Lightning and common alternatives.

Usage::

    python benchmarks/overhead.py            # about ten minutes on an idle 2-core CPU
    python benchmarks/overhead.py --steps 100 --warmup 40 --repeats 2

Two models on synthetic data: a CNN with BatchNorm (3x32x32 images, batch 32) and a small Transformer
(Lightning's demo ``Transformer``, vocabulary 256, sequences of 32 tokens, batch 16). For each model the
configurations below run in turn, ``--repeats`` times, interleaved (bare, suite, ..., bare, suite, ...) so that
a change of machine load hits them all alike. Each run times every training step (from one
``on_train_batch_start`` to the next) and drops the first steps as warm-up; its figure is the lower quartile of
the rest (other processes only ever add time). Each repeat's ratio is taken over the bare run of the same repeat,
a few seconds apart, and the table shows the median of those ratios: a best-of-repeats figure pairs the luckiest
bare run with the luckiest other run, which on a shared machine can be minutes apart. Wall-clock ratios
still move by 20 % and more between runs on a busy machine, so each run also measures the time spent inside
Lightning's callback dispatch on the same steps (every hook of every callback, the dispatch itself included):
the extra callback time over bare Lightning is the suite's own cost, measured directly, and ``attributed`` is
each step's time over that step's time without it (median over the steps): both come from the same step, so a
slower stretch of the machine, which stretches the step and the callbacks alike, leaves the ratio alone. The
default warm-up (90 steps) skips the suite's one-off start-of-fit work (the fit-start checks, BatchNorm's warm-up
verdicts): the figures are the steady state of a long run.

Configurations:

- ``bare``: Lightning with a TensorBoard logger, ``log_every_n_steps=50``.
- ``floor``: one callback doing the least a per-step gradient check can do: one fused norm of every gradient,
  read on the host and tested for finiteness. What any per-step observer pays on this machine.
- ``suite``: ``lightning_sanity.default_callbacks()`` at its default cadence (everything the suite has).
- ``norms/step``: ``NormMonitor`` reading, logging and judging every step (``norms_log_every_n_steps=1``):
  per-layer gradient norms, weight norms and update ratios, ``log_every_n_steps=1``.
- ``grad_norm/step``: Lightning's documented recipe, ``self.log_dict(grad_norm(self, 2))`` in
  ``on_before_optimizer_step``, ``log_every_n_steps=1`` (per-parameter gradient norms only).
- ``hist/step``: a TensorBoard histogram of every parameter and every gradient every step.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import grad_norm
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)


# --------------------------------------------------------------------------- models


class CNN(L.LightningModule):
    def __init__(self, recipe: bool = False) -> None:
        super().__init__()
        self.recipe = recipe
        blocks: list[nn.Module] = []
        channels = 3
        for width in (16, 32, 64):
            blocks += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.net = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.recipe:
            self.log_dict(grad_norm(self, norm_type=2))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    @staticmethod
    def data(steps: int) -> DataLoader:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(steps * 32, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (steps * 32,), generator=gen)
        return DataLoader(TensorDataset(x, y), batch_size=32)


class SmallTransformer(L.LightningModule):
    def __init__(self, recipe: bool = False) -> None:
        super().__init__()
        from lightning.pytorch.demos import Transformer

        self.recipe = recipe
        self.model = Transformer(vocab_size=256, ninp=64, nhead=4, nhid=128, nlayers=2, dropout=0.1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.nll_loss(self.model(x, y), y.reshape(-1))
        self.log("train_loss", loss)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.recipe:
            self.log_dict(grad_norm(self, norm_type=2))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    @staticmethod
    def data(steps: int) -> DataLoader:
        gen = torch.Generator().manual_seed(0)
        seq = torch.randint(0, 256, (steps * 16, 33), generator=gen)
        return DataLoader(TensorDataset(seq[:, :-1], seq[:, 1:]), batch_size=16)


# --------------------------------------------------------------------------- measuring


class _DispatchClock:
    """Time spent inside Lightning's callback dispatch (every callback hook, the dispatch itself included)."""

    total = 0.0

    @classmethod
    def install(cls) -> None:
        from lightning.pytorch.trainer import call

        original = call._call_callback_hooks

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                cls.total += time.perf_counter() - start

        call._call_callback_hooks = timed


class StepTimer(L.Callback):
    """Wall time from one training batch start to the next, and the part of it spent in callbacks."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.marks.append((time.perf_counter(), _DispatchClock.total))

    def on_train_end(self, trainer, pl_module) -> None:
        self.marks.append((time.perf_counter(), _DispatchClock.total))

    def typical(self, warmup: int) -> tuple[float, float, list[tuple[float, float]]]:
        """Lower quartile of the step times, median callback time per step, and every (step, callback) pair.

        The lower quartile is robust to other processes taking the CPU; the callback time is measured on the
        same steps as the step time, so it does not depend on how loaded the machine was between runs.
        """
        steps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(self.marks, self.marks[1:])][warmup:]
        gaps = sorted(step for step, _ in steps)
        hooks = sorted(hook for _, hook in steps)
        return gaps[len(gaps) // 4], hooks[len(hooks) // 2], steps


def attributed(steps: list[tuple[float, float]], bare_hooks: float) -> float:
    """The step time over the step time without the extra callback time, median over the same steps.

    Numerator and denominator come from the same step, so a machine that runs slower for a while (which stretches
    the step and the callbacks alike) moves neither the ratio nor its median.
    """
    return statistics.median(step / (step - (hooks - bare_hooks)) for step, hooks in steps)


class Floor(L.Callback):
    """The least a per-step gradient check can do: one fused norm of every gradient, read and tested on the host.

    Not a usable tool (no layers, no history, no judgement): it shows what any per-step observer pays on this
    machine before it does anything useful.
    """

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not all(map(math.isfinite, torch.stack(torch._foreach_norm(grads)).tolist())):
            trainer.should_stop = True


class Histograms(L.Callback):
    """A histogram of every parameter and every gradient, every step (what people often do by hand)."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        writer = trainer.logger.experiment
        for name, p in pl_module.named_parameters():
            writer.add_histogram(f"weights/{name}", p.detach(), trainer.global_step)
            if p.grad is not None:
                writer.add_histogram(f"grads/{name}", p.grad, trainer.global_step)


def configurations() -> dict[str, tuple[list, int, bool]]:
    """name -> (callbacks factory output, log_every_n_steps, use the grad_norm recipe)."""
    import lightning_sanity
    from lightning_sanity.callbacks.norms import NormMonitor

    return {
        "bare": (lambda: [], 50, False),
        "floor": (lambda: [Floor()], 50, False),
        "suite": (lambda: lightning_sanity.default_callbacks(print_summary=False), 50, False),
        "norms/step": (lambda: [NormMonitor(norms_log_every_n_steps=1)], 1, False),
        "grad_norm/step": (lambda: [], 1, True),
        "hist/step": (lambda: [Histograms()], 50, False),
    }


def run_once(model_cls: type, callbacks: list, log_every: int, recipe: bool, steps: int, warmup: int,
             root: str) -> tuple[float, float, list[tuple[float, float]]]:
    L.seed_everything(0, verbose=False)
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps, max_epochs=1, accelerator="cpu", devices=1, callbacks=[*callbacks, timer],
        logger=TensorBoardLogger(root, name="bench"), log_every_n_steps=log_every, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
    )
    trainer.fit(model_cls(recipe=recipe), model_cls.data(steps))
    return timer.typical(warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--warmup", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    _DispatchClock.install()
    configs = configurations()
    results: dict[str, dict[str, list[tuple[float, float, list]]]] = {}
    with tempfile.TemporaryDirectory() as root:
        for model_cls in (CNN, SmallTransformer):
            times = results.setdefault(model_cls.__name__, {name: [] for name in configs})
            for _ in range(args.repeats):
                for name, (make, log_every, recipe) in configs.items():
                    step, hooks, steps = run_once(model_cls, make(), log_every, recipe, args.steps, args.warmup, root)
                    times[name].append((step, hooks, steps))
                    print(f"{model_cls.__name__:>16} {name:>15}: {1000 * step:7.1f} ms/step, "
                          f"{1000 * hooks:6.2f} ms in callbacks", flush=True)
    print(f"\nCPU ({torch.get_num_threads()} threads), {args.steps} steps per run, the first {args.warmup} dropped, "
          f"{args.repeats} interleaved repeats. Each run's figure is the lower quartile of its step times; each "
          "repeat's ratio is over the bare run of the same repeat (run moments apart), and the table shows the "
          "median of those ratios. `wall`: step time over bare. `callbacks`: median time per step inside "
          "Lightning's callback dispatch, median over repeats. `attributed`: each step's time over the same step's "
          "time less the callback time beyond bare Lightning's, median over the steps and then over repeats (the "
          "grad_norm recipe runs in the LightningModule, outside the dispatch: wall ratio only).\n")
    print("| configuration | " + " | ".join(f"{m} wall | {m} callbacks ms | {m} attributed" for m in results) + " |")
    print("|---|" + "---:|---:|---:|" * len(results))
    for name in configs:
        cells = []
        for model in results:
            pairs = list(zip(results[model]["bare"], results[model][name]))
            wall = statistics.median(step / bare_step for (bare_step, _, _), (step, _, _) in pairs)
            hooks = statistics.median(h for _, h, _ in results[model][name])
            ratio = statistics.median(attributed(steps, bare_h) for (_, bare_h, _), (_, _, steps) in pairs)
            cells += [f"{wall:.3f}x", f"{1000 * hooks:.2f}", "n/a" if name == "grad_norm/step" else f"{ratio:.3f}x"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
