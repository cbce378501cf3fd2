"""The input-independent-baseline recipe: does the model do better with its real inputs than with zeros?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Union

import lightning.pytorch as pl
import torch
from lightning_sanity.replays.rng import isolate_rng

from lightning_sanity.batch import BatchFn, split_batch
from lightning_sanity.checks.curves import clearly_better, varies_across_batch
from lightning_sanity.findings import Finding, Severity
from lightning_sanity.recipes.batches import _seed_all, _take_batches, _to_device, zero_inputs
from lightning_sanity.recipes.training import (
    OptimizerFactory,
    _check_callable,
    _check_common,
    _copy_model,
    _forward,
    _optimizers,
    _progress_bar,
    _quiet_logging,
    _resolve_seed,
    _settled_loss,
    _train,
)
from lightning_sanity.recipes.verdict import _ADVICE, BASELINE, RecipeVerdict, _finish, _fmt


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
