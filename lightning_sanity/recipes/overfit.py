"""The overfit-one-batch recipe: can the model drive the loss to its floor on one small fixed batch?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Union

import lightning.pytorch as pl
import torch
from lightning_sanity.replays.rng import isolate_rng

from lightning_sanity.batch import BatchFn, slice_batch, split_batch
from lightning_sanity.batch import batch_size as _batch_size_of
from lightning_sanity.checks.curves import label_entropy, read_overfit_curve, reached_floor
from lightning_sanity.findings import Finding, Severity
from lightning_sanity.recipes.batches import _seed_all, _take_batches, _to_device
from lightning_sanity.recipes.training import (
    OptimizerFactory,
    _check_callable,
    _check_common,
    _copy_model,
    _coverage_findings,
    _label_match,
    _optimizers,
    _progress_bar,
    _quiet_logging,
    _resolve_seed,
    _settled_loss,
    _train,
)
from lightning_sanity.recipes.verdict import _ADVICE, OVERFIT, RecipeVerdict, _finish, _fmt


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
        coverage = _coverage_findings(clone, optimizers, OVERFIT)  # after training: who got gradients
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
