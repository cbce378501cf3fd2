"""Verdict recipes: short experiments on a copy of the model that end in pass or fail, with advice.

- :func:`overfit_one_batch`: can the model drive the loss to its floor on one small fixed batch?
- :func:`input_independent_baseline`: does the model do better with its real inputs than with all-zero inputs?

Both train deep copies of the user's LightningModule by calling its own ``configure_optimizers`` and
``training_step`` directly, without a Trainer, and leave the user's model, its optimizer, its modes, the global
random state and the data loader's generator exactly as they were. Both return a :class:`RecipeVerdict` and,
given ``out_dir``, write the suite's ``summary.json``/``summary.md`` to ``<out_dir>/sanity/``.

Example::

    import lightning_sanity.recipes as recipes

    verdict = recipes.overfit_one_batch(MyModel(), my_datamodule, out_dir="sanity_runs/overfit")
    print(verdict)           # PASS/FAIL, the failure mode, the loss curve's key figures, what to try
    verdict.passed, verdict.mode, verdict.losses
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Optional, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader, move_data_to_device
from lightning.pytorch.utilities.seed import isolate_rng
from torch import nn

from lightning_sanity._compat import optimizers_of
from lightning_sanity.batch import BatchFn, slice_batch, split_batch
from lightning_sanity.batch import batch_size as _batch_size_of
from lightning_sanity.checks.curves import (
    clearly_better,
    label_entropy,
    predicted_labels,
    read_overfit_curve,
    reached_floor,
    varies_across_batch,
)
from lightning_sanity.findings import Finding, FindingCollector, Severity, global_seed
from lightning_sanity.report import build_report, write_report

OVERFIT = "overfit-one-batch"
BASELINE = "input-independent-baseline"

OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]

# Modules whose randomness in train mode blurs the loss without changing what the model can fit. The recipes
# switch them to eval (on the copy only) when they measure the loss for the verdict; BatchNorm stays in train
# mode so the verdict sees the same batch statistics as training.
_STOCHASTIC = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.MultiheadAttention, nn.RNNBase,
)
_LOG_WITHOUT_TRAINER = r".*self\.log\(\)` but the `self\.trainer` reference is not registered.*"

_ADVICE = {
    "rises": (
        "Look for a flipped sign: a loss returned as its negative, `maximize=True` in the optimizer, a "
        "log-likelihood maximised instead of minimised, or nll_loss fed raw logits instead of log_softmax output."
    ),
    "non-finite": (
        "Lower the learning rate by 10x; look for log/sqrt/division of values that can reach zero, exp of large "
        "values, or a loss computed in half precision."
    ),
    "explodes": (
        "Lower the learning rate by 10x (or add gradient clipping); if it still spikes, look for numerically "
        "unstable operations in the loss (log of softmax computed in two steps, division by small values)."
    ),
    "oscillates": (
        "Lower the learning rate; check that inputs and labels stay paired (no shuffling, augmentation or "
        "mixing that moves one without the other) and that the labels are the ones the loss expects."
    ),
    "plateaus": (
        "Check that the optimizer holds the model's parameters and nothing detaches them; raise the learning "
        "rate; remove weight decay, dropout and other regularization for this test; check the loss function, "
        "that inputs and labels stay paired, and that the batch the model sees is the one you think."
    ),
    "slow": (
        "The loss is still going down: run more steps (`steps=`) or raise the learning rate for this test; "
        "a model that cannot fit a few dozen samples quickly may also be too small."
    ),
    "labels-differ": (
        "Check that `forward` computes what `training_step` feeds the loss, and that the loss compares the "
        "output with these labels (not with another field of the batch)."
    ),
}


@dataclasses.dataclass
class RecipeVerdict:
    """The outcome of a recipe.

    Attributes:
        recipe: ``"overfit-one-batch"`` or ``"input-independent-baseline"``.
        passed: whether the model passed.
        mode: ``"passed"``, or the failure mode (``rises``, ``non-finite``, ``explodes``, ``oscillates``,
            ``plateaus``, ``slow``, ``labels-differ`` for overfit; ``no-gap``, ``non-finite`` for the baseline).
        message: one sentence with the figures.
        advice: what to try.
        curves: the training loss at each step, per run (``{"loss": [...]}`` for overfit,
            ``{"real": [...], "zeroed": [...]}`` for the baseline).
        figures: the numbers the verdict was read from.
        findings: the findings also written to the report (contract check names, ``data["recipe"]`` set).
        report: the summary.json content.
        out_dir: the folder holding ``sanity/summary.json`` and ``summary.md``, or None when nothing was written.
    """

    recipe: str
    passed: bool
    mode: str
    message: str
    advice: str
    curves: dict[str, list[float]]
    figures: dict[str, Any]
    findings: list[Finding]
    report: dict[str, Any]
    out_dir: Optional[Path] = None

    @property
    def losses(self) -> list[float]:
        """The main loss curve: the overfit run's, or the real-input run's for the baseline."""
        return self.curves.get("loss", self.curves.get("real", []))

    def __str__(self) -> str:
        head = f"{self.recipe}: {'PASS' if self.passed else 'FAIL'}" + ("" if self.passed else f" ({self.mode})")
        lines = [head, f"  {self.message}"]
        for name, curve in self.curves.items():
            if curve:
                label = "loss" if name == "loss" else f"{name} loss"
                lines.append(f"  {label}: {_sparkline_figures(curve)}")
        if not self.passed and self.advice:
            lines.append(f"  Try: {self.advice}")
        others = [f for f in self.findings if f.check != "loss-trend" or f.severity is not Severity.INFO]
        for f in others:
            if f.message != self.message:
                lines.append(f"  [{f.severity.value}] {f.check}: {f.message}")
        if self.out_dir is not None:
            lines.append(f"  Report: {Path(self.out_dir) / 'sanity' / 'summary.md'}")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _sparkline_figures(curve: list[float]) -> str:
    n = len(curve)
    picks = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1})
    return "  ".join(f"step {i}: {_fmt(curve[i])}" for i in picks if 0 <= i < n)


# --------------------------------------------------------------------------- argument checks


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


# --------------------------------------------------------------------------- data


def _train_loader(source: Any) -> tuple[Iterable, bool]:
    """The training loader of ``source``, and whether it is a CombinedLoader (which yields ``(batch, idx, idx)``)."""
    if isinstance(source, pl.LightningDataModule):
        # What the Trainer does before fit; a datamodule that downloads does so into its own folder.
        source.prepare_data()
        source.setup("fit")
        loader = source.train_dataloader()
    else:
        loader = source
    several = isinstance(loader, Mapping) or (
        isinstance(loader, (list, tuple)) and loader and all(isinstance(i, torch.utils.data.DataLoader) for i in loader)
    )
    if several:  # several training loaders: the Trainer combines them the same way
        loader = CombinedLoader(loader, "max_size_cycle")
    if isinstance(loader, torch.Tensor) or not isinstance(loader, Iterable):
        raise ValueError(
            f"`datamodule_or_loader` must be a LightningDataModule, a DataLoader or an iterable of batches, "
            f"got {type(source).__name__}."
        )
    return loader, isinstance(loader, CombinedLoader)


def _generators(loader: Any) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, sampler, batch_sampler, getattr(batch_sampler, "sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def _seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass


def _take_batches(source: Any, count: int, seed: int) -> list[Any]:
    """The first ``count`` batches of the training loader, without moving any random state the user owns."""
    loader, combined = _train_loader(source)
    generators = _generators(loader)
    states = [g.get_state() for g in generators]
    batches: list[Any] = []
    try:
        with isolate_rng():
            _seed_all(seed)
            iterator = iter(loader)
            for batch in iterator:
                batches.append(batch[0] if combined else batch)
                if len(batches) == count:
                    break
            del iterator
    finally:
        # A loader with its own generator would otherwise shuffle differently in the user's next epoch.
        for gen, state in zip(generators, states):
            gen.set_state(state)
    if not batches:
        raise ValueError("`datamodule_or_loader` gave no batch: the training loader is empty.")
    return batches


def _to_device(module: pl.LightningModule, batch: Any) -> Any:
    device = module.device
    try:
        batch = module.on_before_batch_transfer(batch, 0)
        batch = module.transfer_batch_to_device(batch, device, 0)
        return module.on_after_batch_transfer(batch, 0)
    except RuntimeError as err:
        if "not attached to a `Trainer`" not in str(err):
            raise
        return move_data_to_device(batch, device)


def _replace_tensors(batch: Any, targets: list[torch.Tensor], make: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``batch`` with every tensor that *is* one of ``targets`` replaced by ``make(tensor)``."""
    if isinstance(batch, torch.Tensor):
        return make(batch) if any(batch is t for t in targets) else batch
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_replace_tensors(v, targets, make) for v in batch))
    if isinstance(batch, Mapping):
        try:
            return type(batch)({k: _replace_tensors(v, targets, make) for k, v in batch.items()})
        except TypeError:
            return {k: _replace_tensors(v, targets, make) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_replace_tensors(v, targets, make) for v in batch)
    return batch


def _tensors_in(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors_in(v)]
    return []


def zero_inputs(batch: Any, get_input: BatchFn = None) -> Any:
    """The same batch with its input (as :func:`lightning_sanity.batch.split_batch` finds it) set to zeros.

    Raises:
        ValueError: no input tensor found, or ``get_input`` returned a tensor that is not part of the batch.

    Example::

        >>> x, y = zero_inputs((torch.ones(2, 3), torch.tensor([0, 1])))
        >>> x.sum().item(), y.tolist()
        (0.0, [0, 1])
    """
    x, _ = split_batch(batch, get_input=get_input)
    found = _tensors_in(x)
    if not found:
        raise ValueError(
            "The recipe found no input tensor in the batch; pass `get_input=lambda batch: ...` returning the "
            "input tensor (it must be a tensor held in the batch, not a new one)."
        )
    zeroed = _replace_tensors(batch, found, torch.zeros_like)
    if not any(t is not z for t, z in zip(_tensors_in(batch), _tensors_in(zeroed))):
        raise ValueError(
            "`get_input` returned a tensor that is not held in the batch, so the recipe cannot zero it in place; "
            "make `get_input` return the batch's own input tensor (e.g. `lambda b: b['pixels']`)."
        )
    return zeroed


# --------------------------------------------------------------------------- the copy, its optimizer, its steps


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
    in_optimizer = {id(p) for opt in optimizers for g in opt.param_groups for p in g["params"]}
    named = [(n, p) for n, p in clone.named_parameters() if p.requires_grad]
    model_ids = {id(p) for p in clone.parameters()}
    missing = [n for n, p in named if id(p) not in in_optimizer]
    foreign = len(in_optimizer - model_ids)
    out = []
    if named and len(missing) == len(named):
        out.append(Finding(
            "optimizer-coverage", Severity.ERROR,
            f"None of the model's {len(named)} trainable parameters is in the optimizer "
            f"({foreign} parameters it holds belong to something else), so no step can change the model.",
            "Build the optimizer over `self.parameters()` (or the submodules you mean to train) inside "
            "`configure_optimizers`, not over a module created there or a stale copy.",
            where=missing[0], data={"recipe": recipe, "missing": len(missing), "foreign": foreign}, key="none"))
    elif missing or foreign:
        out.append(Finding(
            "optimizer-coverage", Severity.WARNING,
            f"{len(missing)} of the model's {len(named)} trainable parameters are in no optimizer"
            + (f" (first: {missing[0]})" if missing else "")
            + (f", and the optimizer holds {foreign} parameters that are not the model's" if foreign else "") + ".",
            "Freeze what you do not train (`requires_grad_(False)`) and build the optimizer over the parameters "
            "you train.",
            where=missing[0] if missing else None,
            data={"recipe": recipe, "missing": len(missing), "foreign": foreign, "first_missing": missing[:5]},
            key="some"))
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


def _finish(recipe: str, seed: int, findings: list[Finding], checks: tuple[str, ...], detail: str,
            out_dir: Optional[Union[str, Path]]) -> tuple[dict[str, Any], Optional[Path]]:
    collector = FindingCollector(seed=seed)
    collector.enable(*checks)
    for finding in findings:
        collector.add(finding)
    collector.detail("loss-trend", detail)
    report = build_report(collector)
    written = None
    if out_dir is not None:
        write_report(report, out_dir)
        written = Path(out_dir)
    return report, written


def _resolve_seed(seed: Optional[int]) -> int:
    if seed is not None:
        return seed
    found = global_seed()
    return found if found is not None else 0


# --------------------------------------------------------------------------- overfit one batch


def overfit_one_batch(
    model: pl.LightningModule,
    datamodule_or_loader: Any,
    steps: int = 500,
    *,
    batch_size: int = 16,
    tolerance: float = 0.05,
    loss_floor: float = 0.0,
    check_every: int = 10,
    seed: Optional[int] = None,
    optimizer: Optional[OptimizerFactory] = None,
    get_input: BatchFn = None,
    get_target: BatchFn = None,
    out_dir: Optional[Union[str, Path]] = None,
    progress: Optional[bool] = None,
) -> RecipeVerdict:
    """Train a copy of ``model`` on one small fixed batch and say whether it can drive the loss to its floor.

    The copy is built with ``copy.deepcopy``, trained in train mode with the optimizer(s) of its own
    ``configure_optimizers`` (learning-rate schedulers are not stepped: every parameter group trains at its
    base learning rate), by calling ``training_step(batch, step)`` directly. ``self.log`` calls inside
    ``training_step`` are dropped silently. Every ``check_every`` steps the loss is measured with dropout off
    (BatchNorm still on batch statistics); the run stops as soon as it passes.

    Passes when that loss closed all but ``tolerance`` of the distance from its start to ``loss_floor`` and,
    for a classification (logits and class indices as :func:`lightning_sanity.checks.curves.predicted_labels`
    recognises them), ``forward`` predicts every label of the batch; or when the loss stopped above its floor
    but every label is predicted (label smoothing, weight decay). Else the failure mode is read from the curve.

    Args:
        model: the LightningModule (automatic optimization). It is not modified.
        datamodule_or_loader: a LightningDataModule (``prepare_data``, ``setup("fit")`` and ``train_dataloader``
            are called, as the Trainer would), a DataLoader, or any iterable of batches. Its first batch is used.
        steps: the most training steps to run.
        batch_size: how many samples of the first batch to keep (the practice: a few to a few dozen).
        tolerance: share of the initial distance to ``loss_floor`` the loss may keep and still pass.
        loss_floor: the lowest loss the task allows (0 for cross-entropy, MSE, BCE).
        check_every: steps between two measurements of the loss with dropout off.
        seed: seed of the recipe's own random draws (batch order, dropout); default the global seed
            (``PL_GLOBAL_SEED``) or 0. The global random state after the call is the one before it.
        optimizer: ``parameters -> Optimizer``, used instead of ``configure_optimizers`` (for one that needs a
            Trainer).
        get_input / get_target: ``batch -> tensor`` where :func:`lightning_sanity.batch.split_batch` cannot
            find them; used for the label check only.
        out_dir: folder to write ``sanity/summary.json`` and ``sanity/summary.md`` into; nothing is written when
            None.
        progress: show a progress bar on stderr; default: when stderr is a terminal.

    Returns:
        A :class:`RecipeVerdict` with ``curves["loss"]`` the training loss at each step.

    Raises:
        ValueError: a bad argument (named in the message), a model in manual optimization, an empty loader,
            no optimizer.
        RuntimeError: ``training_step`` or ``configure_optimizers`` needs a Trainer.

    Example::

        verdict = overfit_one_batch(MyClassifier(), train_loader, steps=200, out_dir="sanity_runs/overfit")
        assert verdict.passed, verdict
    """
    _check_common(model, steps, seed, out_dir, progress, optimizer)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ValueError(f"`tolerance` must be a number in (0, 1), got {tolerance!r}.")
    if not isinstance(loss_floor, (int, float)) or isinstance(loss_floor, bool) or not math.isfinite(loss_floor):
        raise ValueError(f"`loss_floor` must be a finite number, got {loss_floor!r}.")
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"`check_every` must be a positive int, got {check_every!r}.")
    _check_callable(get_input, "get_input")
    _check_callable(get_target, "get_target")
    seed = _resolve_seed(seed)

    with isolate_rng(), _quiet_logging():
        batch = _take_batches(datamodule_or_loader, 1, seed)[0]
        size = _batch_size_of(batch)
        if size is not None and size > batch_size:
            batch = slice_batch(batch, slice(0, batch_size))
            size = batch_size
        _seed_all(seed)
        clone = _copy_model(model)
        batch = _to_device(clone, batch)
        optimizers = _optimizers(clone, optimizer)
        coverage = _coverage_findings(clone, optimizers, OVERFIT)
        initial = _settled_loss(clone, [batch])
        target = loss_floor + tolerance * max(initial - loss_floor, 0.0)
        state: dict[str, Any] = {"settled": initial, "labels": None, "passed_at": None}

        def on_step(step: int, value: float) -> bool:
            # A loss that has not changed by a single bit for 50 steps will not change: the curve is read.
            state["same"] = state.get("same", 0) + 1 if value == state.get("last") else 0
            state["last"] = value
            if state["same"] >= 50:
                return True
            due = (step + 1) % check_every == 0 or value <= target
            if not due:
                return False
            state["settled"] = _settled_loss(clone, [batch])
            if not reached_floor(state["settled"], initial, loss_floor, tolerance):
                return False
            state["labels"] = _label_match(clone, batch, get_input, get_target)
            labels = state["labels"]
            if labels["checked"] and labels["correct"] < labels["total"]:
                return False
            state["passed_at"] = step + 1
            return True

        with _progress_bar(progress, [(OVERFIT, steps)]) as (tick,):
            losses = _train(clone, optimizers, [batch], steps, on_step, tick)
        if state["passed_at"] is None and losses and math.isfinite(losses[-1]):
            state["settled"] = _settled_loss(clone, [batch])
            state["labels"] = _label_match(clone, batch, get_input, get_target)
        _, y = split_batch(batch, get_target=get_target)
        entropy = label_entropy(y) if isinstance(y, torch.Tensor) else None

    verdict = _overfit_verdict(losses, initial, target, state, loss_floor, size, entropy)
    findings = verdict.findings + coverage
    detail = f"{OVERFIT}: {'pass' if verdict.passed else verdict.mode}, loss {_fmt(initial)} -> {_fmt(state['settled'])}"
    report, written = _finish(OVERFIT, seed, findings, ("loss-trend", "non-finite", "optimizer-coverage",
                                                         "loss-input"), detail, out_dir)
    verdict.findings, verdict.report, verdict.out_dir = findings, report, written
    verdict.figures["seed"] = seed
    return verdict


def _overfit_verdict(
    losses: list[float],
    initial: float,
    target: float,
    state: dict[str, Any],
    floor: float,
    size: Optional[int],
    entropy: Optional[float],
) -> RecipeVerdict:
    settled = state["settled"]
    labels = state["labels"] or {"checked": False, "reason": "not measured"}
    figures: dict[str, Any] = {
        "steps_run": len(losses), "initial_loss": initial, "final_loss": settled, "target_loss": target,
        "batch_size": size,
    }
    if labels["checked"]:
        figures.update(labels_correct=labels["correct"], labels_total=labels["total"])
    else:
        figures["label_check"] = labels.get("reason", "")
    label_text = (f"; predictions match {labels['correct']} of {labels['total']} labels" if labels["checked"] else "")
    data = {"recipe": OVERFIT, **figures}

    def verdict(passed: bool, mode: str, message: str, advice: str, finding: Finding) -> RecipeVerdict:
        return RecipeVerdict(OVERFIT, passed, mode, message, advice, {"loss": losses}, figures, [finding], {})

    if state["passed_at"] is not None:
        message = (f"On one batch of {size} samples the loss fell from {_fmt(initial)} to {_fmt(settled)} "
                   f"(target {_fmt(target)}) in {state['passed_at']} steps{label_text}.")
        return verdict(True, "passed", message, "", Finding("loss-trend", Severity.INFO, message, data=data))

    reading = read_overfit_curve(losses, floor) if losses else None
    mode = reading.mode if reading is not None else "plateaus"
    if reading is not None:
        figures["curve"] = reading.figures
    all_labels = labels["checked"] and labels["correct"] == labels["total"]
    if math.isfinite(settled) and reached_floor(settled, initial, floor, 1 - 1e-9) and all_labels and mode in (
        "plateaus", "slow", "oscillates"
    ):
        # Every label is predicted but the loss stays above its floor: label smoothing or a regularization term.
        message = (f"On one batch of {size} samples the model predicts all {labels['total']} labels after "
                   f"{len(losses)} steps; the loss went from {_fmt(initial)} to {_fmt(settled)} and stays above "
                   f"the target {_fmt(target)}, which label smoothing or a regularization term can explain.")
        return verdict(True, "passed", message, "", Finding("loss-trend", Severity.INFO, message, data=data))
    if reached_floor(settled, initial, floor, 0.05) and labels["checked"] and not all_labels:
        mode = "labels-differ"
        message = (f"The loss reached {_fmt(settled)} on one batch of {size} samples, yet `forward` predicts only "
                   f"{labels['correct']} of {labels['total']} labels.")
        return verdict(False, mode, message, _ADVICE[mode],
                       Finding("loss-input", Severity.WARNING, message, _ADVICE[mode], data={**data, "mode": mode}))
    data["mode"] = mode
    advice = _ADVICE[mode]
    curve = reading.figures if reading is not None else {}
    if mode == "non-finite":
        message = (f"The loss became {curve.get('value')} at step {curve.get('first_non_finite_step')} while "
                   f"overfitting one batch of {size} samples (it started at {_fmt(initial)}).")
        return verdict(False, mode, message, advice, Finding("non-finite", Severity.ERROR, message, advice, data=data))
    if mode == "rises" and curve.get("below_floor"):
        message = (f"On one fixed batch the loss sank below its floor {_fmt(floor)} without bound, from "
                   f"{_fmt(losses[0])} to {_fmt(curve['final'])} in {len(losses)} steps: what is minimised "
                   f"is the negative of an error, so the error itself rises.")
    elif mode == "rises":
        message = (f"On one fixed batch the loss rose from {_fmt(losses[0])} to {_fmt(curve['final'])} in "
                   f"{len(losses)} steps ({round(100 * curve['share_up'])} % of steps went up): the optimizer "
                   f"climbs the loss instead of descending it.")
    elif mode == "explodes":
        message = (f"On one fixed batch the loss spiked from {_fmt(losses[0])} to {_fmt(curve['peak'])} at step "
                   f"{curve['peak_step']} and ended at {_fmt(settled)}, far above the target {_fmt(target)}.")
    elif mode == "oscillates":
        message = (f"On one fixed batch the loss keeps jumping (average step change {round(100 * curve['amplitude'])} "
                   f"% of its level) and ended at {_fmt(settled)}, above the target {_fmt(target)}{label_text}.")
    elif mode == "plateaus":
        message = (f"On one fixed batch the loss stalled at {_fmt(settled)} (it started at {_fmt(initial)}; target "
                   f"{_fmt(target)}) after {len(losses)} steps{label_text}.")
    else:  # slow
        message = (f"On one fixed batch the loss is still falling after {len(losses)} steps, from {_fmt(initial)} "
                   f"to {_fmt(settled)}, but has not reached the target {_fmt(target)}{label_text}.")
    # The loss moved, and to the entropy of the label frequencies (within 3 %): the signature of a model that
    # learnt only the prior, which a loss left at its starting value (about ln C) must not be mistaken for.
    moved = initial - settled > 0.05 * abs(initial)
    if mode in ("plateaus", "oscillates") and moved and entropy and abs(settled - entropy) <= 0.03 * entropy:
        message = message[:-1] + (f"; it sits at the entropy of the batch's labels ({_fmt(entropy)}), so the model "
                                  "learnt only how often each label occurs, nothing from the inputs.")
        figures["label_entropy"] = entropy
    severity = {"rises": Severity.ERROR, "slow": Severity.INFO}.get(mode, Severity.WARNING)
    return verdict(False, mode, message, advice, Finding("loss-trend", severity, message, advice, data=data))


# --------------------------------------------------------------------------- input-independent baseline


def input_independent_baseline(
    model: pl.LightningModule,
    datamodule_or_loader: Any,
    steps: int = 200,
    *,
    num_batches: int = 4,
    margin: float = 0.9,
    loss_floor: float = 0.0,
    seed: Optional[int] = None,
    optimizer: Optional[OptimizerFactory] = None,
    get_input: BatchFn = None,
    out_dir: Optional[Union[str, Path]] = None,
    progress: Optional[bool] = None,
) -> RecipeVerdict:
    """Train two copies of ``model`` for the same budget, one on the real inputs, one on all-zero inputs.

    Both copies start from the model's weights, see the same ``num_batches`` batches in the same order with the
    same random draws, and train with their own ``configure_optimizers`` (schedulers not stepped). The zeroed
    copy can learn only what does not depend on the input (the label frequencies, the mean target), so a model
    that uses its input ends clearly lower. The final losses are measured with dropout off over all the batches.

    Passes when the real-input loss is below ``margin`` times the zeroed-input loss (distances to
    ``loss_floor``). Else ``loss-trend`` fires, and ``constant-output`` too when the real-input copy gives the
    same output for every sample of a batch whose inputs differ.

    Args:
        model: the LightningModule (automatic optimization). It is not modified.
        datamodule_or_loader: a LightningDataModule, a DataLoader, or an iterable of batches.
        steps: training steps per copy.
        num_batches: how many batches of the training loader to cycle through.
        margin: the real-input loss must be below ``margin`` x the zeroed-input loss.
        loss_floor: the lowest loss the task allows.
        seed: seed of the recipe's own random draws; default the global seed or 0. Global state is restored.
        optimizer: ``parameters -> Optimizer`` instead of ``configure_optimizers``.
        get_input: ``batch -> tensor`` returning the batch's own input tensor(s), where
            :func:`lightning_sanity.batch.split_batch` does not find it. Those tensors are zeroed.
        out_dir: folder for ``sanity/summary.json`` and ``summary.md``; nothing is written when None.
        progress: show a progress bar on stderr; default: when stderr is a terminal.

    Returns:
        A :class:`RecipeVerdict` with ``curves["real"]`` and ``curves["zeroed"]`` and
        ``figures["real_loss"]``, ``figures["zeroed_loss"]``, ``figures["ratio"]``.

    Raises:
        ValueError: a bad argument, a model in manual optimization, no input found, an empty loader.
        RuntimeError: ``training_step`` or ``configure_optimizers`` needs a Trainer.

    Example::

        verdict = input_independent_baseline(MyClassifier(), train_loader, out_dir="sanity_runs/baseline")
        print(verdict.figures["real_loss"], verdict.figures["zeroed_loss"])
    """
    _check_common(model, steps, seed, out_dir, progress, optimizer)
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise ValueError(f"`num_batches` must be a positive int, got {num_batches!r}.")
    if not isinstance(margin, (int, float)) or not 0 < margin < 1:
        raise ValueError(f"`margin` must be a number in (0, 1), got {margin!r}.")
    if not isinstance(loss_floor, (int, float)) or isinstance(loss_floor, bool) or not math.isfinite(loss_floor):
        raise ValueError(f"`loss_floor` must be a finite number, got {loss_floor!r}.")
    _check_callable(get_input, "get_input")
    seed = _resolve_seed(seed)

    with isolate_rng(), _quiet_logging():
        raw = _take_batches(datamodule_or_loader, num_batches, seed)
        zeroed_raw = [zero_inputs(b, get_input) for b in raw]
        runs: dict[str, dict[str, Any]] = {}
        with _progress_bar(progress, [("real inputs", steps), ("zeroed inputs", steps)]) as ticks:
            for (name, source), tick in zip((("real", raw), ("zeroed", zeroed_raw)), ticks):
                _seed_all(seed)  # same dropout masks and draws for both copies
                clone = _copy_model(model)
                batches = [_to_device(clone, b) for b in source]
                optimizers = _optimizers(clone, optimizer)
                initial = _settled_loss(clone, batches)
                curve = _train(clone, optimizers, batches, steps, progress=tick)
                final = _settled_loss(clone, batches) if curve and math.isfinite(curve[-1]) else float("nan")
                runs[name] = {"initial": initial, "final": final, "curve": curve, "clone": clone, "batches": batches}
        real, zero = runs["real"], runs["zeroed"]
        x, _ = split_batch(real["batches"][0], get_input=get_input)
        output, _ = _forward(real["clone"], real["batches"][0], get_input)
        inputs_vary = varies_across_batch(x) if isinstance(x, torch.Tensor) else None
        outputs_vary = varies_across_batch(output)

    return _baseline_verdict(real, zero, steps, margin, loss_floor, seed, inputs_vary, outputs_vary, out_dir,
                             len(raw))


def _baseline_verdict(
    real: dict[str, Any], zero: dict[str, Any], steps: int, margin: float, floor: float, seed: int,
    inputs_vary: Optional[bool], outputs_vary: Optional[bool], out_dir: Optional[Union[str, Path]], n_batches: int,
) -> RecipeVerdict:
    r, z = real["final"], zero["final"]
    ratio = (r - floor) / (z - floor) if math.isfinite(r) and math.isfinite(z) and z - floor > 1e-12 else None
    figures: dict[str, Any] = {
        "steps": steps, "batches": n_batches, "initial_loss": real["initial"], "real_loss": r, "zeroed_loss": z,
        "ratio": ratio, "margin": margin, "seed": seed,
    }
    data = {"recipe": BASELINE, **figures}
    findings: list[Finding] = []
    curves = {"real": real["curve"], "zeroed": zero["curve"]}
    if not math.isfinite(r) or not math.isfinite(z):
        which = "real-input" if not math.isfinite(r) else "zeroed-input"
        mode = "non-finite"
        message = f"The loss of the {which} copy became non-finite within {steps} steps, so the two cannot be compared."
        advice = _ADVICE["non-finite"]
        findings.append(Finding("non-finite", Severity.ERROR, message, advice, data={**data, "mode": mode}))
        passed = False
    elif clearly_better(r, z, floor, margin):
        mode, passed, advice = "passed", True, ""
        message = (f"After {steps} steps the model trained on real inputs reaches loss {_fmt(r)}, against "
                   f"{_fmt(z)} for the same model trained on all-zero inputs (ratio {ratio:.3g}).")
        findings.append(Finding("loss-trend", Severity.INFO, message, data=data))
    else:
        mode, passed = "no-gap", False
        message = (f"After {steps} steps the model trained on real inputs reaches loss {_fmt(r)}, not clearly "
                   f"better than {_fmt(z)} for the same model trained on all-zero inputs"
                   + (f" (ratio {ratio:.3g}, needs below {margin})" if ratio is not None else "")
                   + ": it gets little or nothing from its inputs.")
        advice = ("Check that `forward` uses its input all the way to the output (no multiplication by zero, "
                  "detached or overwritten tensor, wrong field of the batch); that inputs and labels are paired; "
                  "then give the test more steps or a higher learning rate.")
        if z - floor <= 0.05 * max(zero["initial"] - floor, 1e-12):
            message = message[:-1] + "; the zeroed copy itself reaches the floor, so the targets can be predicted without any input (constant labels?)."
        findings.append(Finding("loss-trend", Severity.WARNING, message, advice, data={**data, "mode": mode}))
    if inputs_vary and outputs_vary is False:
        findings.append(Finding(
            "constant-output", Severity.WARNING,
            "After training on real inputs the model gives the same output for every sample of a batch whose "
            "inputs differ.",
            "Find the layer where the input stops mattering: a multiplication by zero, a detached or overwritten "
            "tensor, a reduction over the wrong dimension, or saturated units.",
            data={"recipe": BASELINE}))
    detail = f"{BASELINE}: real {_fmt(r)} vs zeroed {_fmt(z)}" + (f" (ratio {ratio:.3g})" if ratio is not None else "")
    report, written = _finish(BASELINE, seed, findings, ("loss-trend", "non-finite", "constant-output"), detail,
                              out_dir)
    return RecipeVerdict(BASELINE, passed, mode, message, advice, curves, figures, findings, report, written)
