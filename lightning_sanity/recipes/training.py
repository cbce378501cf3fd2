"""Training a copy of the model without a Trainer: argument checks, the copy, its optimizers, its steps.

Shared by both recipes: they call the copy's own ``configure_optimizers`` and ``training_step`` directly and
measure the loss with dropout off (:func:`_settled_loss`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_sanity._compat import optimizers_of
from lightning_sanity.batch import BatchFn, split_batch
from lightning_sanity.checks.curves import predicted_labels
from lightning_sanity.checks.flow import optimizer_coverage
from lightning_sanity.checks.modes import DROPOUTS
from lightning_sanity.findings import Finding, Severity, global_seed

OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]

# Modules whose randomness in train mode blurs the loss without changing what the model can fit. The recipes
# switch them to eval (on the copy only) when they measure the loss for the verdict; BatchNorm stays in train
# mode so the verdict sees the same batch statistics as training.
_STOCHASTIC = (*DROPOUTS, nn.MultiheadAttention, nn.RNNBase)
_LOG_WITHOUT_TRAINER = r".*self\.log\(\)` but the `self\.trainer` reference is not registered.*"


def _check_common(model: Any, steps: Any, seed: Any, out_dir: Any, progress: Any, optimizer: Any) -> None:
    if not isinstance(model, pl.LightningModule):
        raise ValueError(f"`model` must be a LightningModule, got {type(model).__name__}.")
    if not model.automatic_optimization:
        raise ValueError(
            "`model` uses manual optimization (`automatic_optimization = False`); the recipes call "
            "`training_step` without a Trainer and support automatic optimization only."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int, got {steps!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an int or None, got {seed!r}.")
    if out_dir is not None and not isinstance(out_dir, (str, Path)):
        raise ValueError(f"`out_dir` must be a folder path (str or Path) or None, got {out_dir!r}.")
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"`progress` must be True, False or None (on when stderr is a terminal), got {progress!r}.")
    if optimizer is not None and not callable(optimizer):
        raise ValueError(f"`optimizer` must be a callable `parameters -> Optimizer` or None, got {optimizer!r}.")


def _check_callable(value: Any, name: str) -> None:
    if value is not None and not callable(value):
        raise ValueError(f"`{name}` must be a callable `batch -> tensor` or None, got {value!r}.")


def _copy_model(model: pl.LightningModule) -> pl.LightningModule:
    try:
        clone = copy.deepcopy(model)
    except Exception as err:
        raise TypeError(
            f"The recipe trains a deep copy of the model and `copy.deepcopy` failed on it ({err!r}); keep "
            "non-copyable objects (open files, locks, data loaders) out of the LightningModule's attributes."
        ) from err
    clone.configure_model()
    clone.train()
    return clone


def _optimizers(clone: pl.LightningModule, factory: Optional[OptimizerFactory]) -> list[torch.optim.Optimizer]:
    if factory is not None:
        optimizers = optimizers_of(factory(clone.parameters()))
    else:
        try:
            optimizers = optimizers_of(clone.configure_optimizers())
        except RuntimeError as err:
            if "not attached to a `Trainer`" not in str(err):
                raise
            raise RuntimeError(
                "`configure_optimizers` needs a Trainer (it reads `self.trainer`, e.g. for "
                "`estimated_stepping_batches`); pass the recipe `optimizer=lambda params: torch.optim.Adam(params, "
                "lr=1e-3)` with your optimizer instead."
            ) from None
    if not optimizers:
        raise ValueError(
            "`configure_optimizers` returned no optimizer, so the recipe cannot train; return one, or pass "
            "`optimizer=lambda params: ...`."
        )
    for opt in optimizers:
        for group in opt.param_groups:
            # Schedulers are not stepped: train at the base learning rate, so a warm-up starting at 0 cannot stall.
            if "initial_lr" in group:
                group["lr"] = group["initial_lr"]
    return optimizers


def _loss_of(output: Any) -> Optional[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("loss"), torch.Tensor):
        return output["loss"]
    if output is None:
        return None
    raise TypeError(
        f"`training_step` returned {type(output).__name__}; the recipes need the loss tensor or a dict with 'loss'."
    )


def _call_training_step(clone: pl.LightningModule, batch: Any, index: int) -> Optional[torch.Tensor]:
    try:
        return _loss_of(clone.training_step(batch, index))
    except RuntimeError as err:
        if "not attached to a `Trainer`" in str(err):
            raise RuntimeError(
                "`training_step` reads `self.trainer`, which the recipes do not create; keep training_step free "
                f"of Trainer state (or guard it with `if self._trainer is not None`). Original error: {err}"
            ) from None
        raise


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    # `self.log` without a Trainer only warns and drops the value: exactly what the recipes want, minus the noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LOG_WITHOUT_TRAINER)
        yield


@contextlib.contextmanager
def _probe_mode(clone: nn.Module) -> Iterator[None]:
    """Dropout-like modules of the copy in eval mode, everything else as it is; restored after."""
    flags = [(m, m.training) for m in clone.modules() if isinstance(m, _STOCHASTIC)]
    for m, _ in flags:
        m.training = False
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in flags:
            m.training = flag


def _settled_loss(clone: pl.LightningModule, batches: list[Any]) -> float:
    with _probe_mode(clone):
        values = []
        for i, batch in enumerate(batches):
            loss = _call_training_step(clone, batch, i)
            if loss is not None:
                values.append(float(loss.detach().float().mean()))
    return sum(values) / len(values) if values else float("nan")


def _forward(clone: pl.LightningModule, batch: Any, get_input: BatchFn) -> tuple[Any, Optional[str]]:
    x, _ = split_batch(batch, get_input=get_input)
    if x is None:
        return None, "no input found in the batch (pass `get_input`)"
    try:
        with _probe_mode(clone):
            return clone(x), None
    except Exception as err:  # forward may need more than the input: then there is nothing to compare
        return None, f"`forward(input)` raised {type(err).__name__}: {err}"


def _label_match(clone: pl.LightningModule, batch: Any, get_input: BatchFn, get_target: BatchFn) -> dict[str, Any]:
    _, y = split_batch(batch, get_target=get_target)
    output, why = _forward(clone, batch, get_input)
    pair = predicted_labels(output, y) if why is None else None
    if pair is None:
        return {"checked": False, "reason": why or "output/target do not look like a classification"}
    predicted, expected = pair
    correct = int((predicted == expected).sum())
    return {"checked": True, "correct": correct, "total": int(expected.numel())}


def _coverage_findings(clone: pl.LightningModule, optimizers: list[torch.optim.Optimizer], recipe: str) -> list[Finding]:
    """Coverage of ``clone``'s trainable parameters by ``optimizers``, read after the recipe trained: a tensor in no
    optimizer that got a gradient is left out by mistake; one that never did (an averaged EMA copy beside the model,
    a momentum teacher) is not in the loss at all (the optimizers' ``zero_grad`` never clears a tensor they do not
    hold, so a gradient once received stays)."""
    named = dict(clone.named_parameters())
    cov = optimizer_coverage(named.items(), [p for opt in optimizers for g in opt.param_groups for p in g["params"]])
    missing, foreign = cov.uncovered, cov.foreign
    trained = [n for n in missing if named[n].grad is not None]
    out = []
    if cov.trainable and len(missing) == cov.trainable:
        out.append(Finding(
            "optimizer-coverage", Severity.ERROR,
            f"None of the model's {cov.trainable} trainable parameters is in the optimizer "
            f"({foreign} parameters it holds belong to something else), so no step can change the model.",
            "Build the optimizer over `self.parameters()` (or the submodules you mean to train) inside "
            "`configure_optimizers`, not over a module created there or a stale copy.",
            where=missing[0], data={"recipe": recipe, "missing": len(missing), "foreign": foreign}, key="none"))
    elif trained or foreign:
        out.append(Finding(
            "optimizer-coverage", Severity.WARNING,
            f"{len(trained)} of the model's {cov.trainable} trainable parameters get gradients but are in no optimizer"
            + (f" (first: {trained[0]})" if trained else "")
            + (f", and the optimizer holds {foreign} parameters that are not the model's" if foreign else "") + ".",
            "Freeze what you do not train (`requires_grad_(False)`) and build the optimizer over the parameters "
            "you train.",
            where=trained[0] if trained else None,
            data={"recipe": recipe, "missing": len(trained), "foreign": foreign, "first_missing": trained[:5]},
            key="some"))
    elif missing:
        out.append(Finding(
            "optimizer-coverage", Severity.INFO,
            f"{len(missing)} trainable parameters are in no optimizer and got no gradient (first: {missing[0]}): "
            "not part of the loss, like an averaged copy of the model kept beside it.",
            "Nothing to do if they are updated another way (an EMA); otherwise `requires_grad_(False)` says so.",
            where=missing[0], data={"recipe": recipe, "missing": len(missing), "receive_grad": False},
            key="no-grad"))
    return out


def _train(
    clone: pl.LightningModule,
    optimizers: list[torch.optim.Optimizer],
    batches: list[Any],
    steps: int,
    on_step: Optional[Callable[[int, float], bool]] = None,
    progress: Optional[Callable[[], None]] = None,
) -> list[float]:
    """Train ``clone`` for ``steps`` steps cycling over ``batches``; returns the loss at each step.

    Stops at the first non-finite loss (nothing more can be learnt from the curve), or when ``on_step`` says so.
    """
    losses: list[float] = []
    with torch.enable_grad():
        for step in range(steps):
            batch = batches[step % len(batches)]
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss = _call_training_step(clone, batch, step)
            if loss is None:  # Lightning skips the step too
                continue
            value = float(loss.detach().float().mean())
            losses.append(value)
            if progress is not None:
                progress()
            if not math.isfinite(value):
                break
            if loss.requires_grad:
                loss.backward()
                for opt in optimizers:
                    opt.step()
            if on_step is not None and on_step(step, value):
                break
    return losses


@contextlib.contextmanager
def _progress_bar(enabled: Optional[bool], runs: list[tuple[str, int]]) -> Iterator[list[Callable[[], None]]]:
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield [lambda: None for _ in runs]
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks = [bar.add_task(name, total=total) for name, total in runs]
        yield [lambda task=task: bar.advance(task) for task in tasks]


def _resolve_seed(seed: Optional[int]) -> int:
    if seed is not None:
        return seed
    found = global_seed()
    return found if found is not None else 0
