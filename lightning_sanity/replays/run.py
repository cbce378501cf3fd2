"""The replay itself: load a bundle into a fresh model and re-run its ``training_step`` under watch.

See :mod:`lightning_sanity.replays` for what a bundle holds and why the step runs without a Trainer.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning_sanity.replays.rng import isolate_rng
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn

from lightning_sanity._compat import optimizers_of
from lightning_sanity.checks import batchnorm as bn_math
from lightning_sanity.checks.numerics import count_nonfinite, is_finite, tensors_in
from lightning_sanity.replays.bundle import load_bundle
from lightning_sanity.replays.result import ReplayResult
from lightning_sanity.replays.rng import restore_rng_states
from lightning_sanity.replays.stand_ins import _attached_trainer, _clip_gradients, _NullOptimizer, _ReplayTrainer
from lightning_sanity.replays.trace import _BackwardWatch, _FirstNonFiniteCall, _forward_source, _ModuleOutputs

# The package's logger, not this module's: the CLI shows the replay's stages by listening to it.
log = logging.getLogger("lightning_sanity.replays")


_AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
_TRUE_DTYPES = {"16-true": torch.float16, "bf16-true": torch.bfloat16, "64-true": torch.float64, "64": torch.float64}


def _pick_device(bundle: Mapping[str, Any], device: Optional[Union[str, torch.device]]) -> torch.device:
    if device is not None:
        return torch.device(device)
    recorded = torch.device(bundle.get("device") or "cpu")
    if recorded.type == "cuda" and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _loss_of(output: Any) -> Optional[Tensor]:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping) and isinstance(output.get("loss"), Tensor):
        return output["loss"]
    return None


def _batchnorm_before(model: nn.Module) -> Optional[dict[str, Any]]:
    layers = [(n, m) for n, m in bn_math.batchnorm_layers(model) if m.running_var is not None]
    layers = [(n, m) for n, m in layers if not isinstance(m.running_var, nn.parameter.UninitializedBuffer)]
    if not layers:
        return None
    numels = torch.tensor([float(m.running_var.numel()) for _, m in layers])
    mean, _ = bn_math.variance_summaries([m.running_var for _, m in layers], numels)
    tracked = torch.stack([m.num_batches_tracked.detach().cpu() for _, m in layers])
    return {"layers": layers, "numels": numels, "mean": mean.cpu(), "tracked": tracked}


def _batchnorm_verdict(
    before: Optional[dict[str, Any]], target: Optional[str], extra: Optional[dict[str, Any]] = None,
) -> Optional[dict[str, Any]]:
    if before is None:
        return None
    layers = before["layers"]
    names = [n for n, _ in layers]
    # A finding made during warm-up judged the batch against the recent batches' variances: replay the same test.
    reference = reference_count = None
    if extra and extra.get("reference_variance") is not None and target in names:
        reference = torch.full((len(layers),), float("nan"))
        reference[names.index(target)] = float(extra["reference_variance"])
        reference_count = torch.full((len(layers),), float(bn_math.REFERENCE_BATCHES))
    mean, _ = bn_math.variance_summaries([m.running_var for _, m in layers], before["numels"])
    tracked = torch.stack([m.num_batches_tracked.detach().cpu() for _, m in layers])
    momentum = torch.tensor([float("nan") if m.momentum is None else float(m.momentum) for _, m in layers])
    warmup = torch.tensor([float(bn_math.warmup_steps(m.momentum)) for _, m in layers])
    eps = torch.tensor([float(m.eps) for _, m in layers])
    out = bn_math.judge(before["mean"], mean.cpu(), before["mean"], before["mean"],
                        momentum, tracked.float(), (tracked - before["tracked"]).float(), warmup, eps,
                        reference, reference_count)
    index = names.index(target) if target in names else int(torch.argmax(torch.nan_to_num(out["batch_ratio"], 0.0)))
    fired = bool(out["fired_jump"][index] | out["fired_batch"][index] | out["fired_nonfinite"][index])
    return {"layer": names[index], "batch_ratio": float(out["batch_ratio"][index]), "jump": float(out["jump"][index]),
            "fired": fired}


# --------------------------------------------------------------------------- replay


def replay(
    bundle_path: Union[str, os.PathLike],
    model: nn.Module,
    *,
    device: Optional[Union[str, torch.device]] = None,
    trusted: bool = False,
) -> ReplayResult:
    """Re-run the training step of a replay bundle on ``model`` and say where it went non-finite.

    Loads the bundle's weights (and optimizer states, for manual optimization) into ``model``, sets the RNGs to
    their state at the start of the step, and calls ``model.training_step(batch, batch_idx)`` with a forward hook
    on every module, a watch on every torch call and ``torch.autograd.detect_anomaly(check_nan=True)`` plus a hook
    on every autograd node during backward. The global RNG states are restored afterwards; ``model`` keeps the
    bundle's weights (the state before the bad update), for further inspection. Replaying a bundle twice gives the
    same result.

    Args:
        bundle_path: the bundle file.
        model: a fresh instance of the LightningModule that was trained (same constructor arguments).
        device: where to run; default the bundle's device when available, else the CPU.
        trusted: allow full unpickling of the bundle (see :func:`load_bundle`).

    Returns:
        A :class:`ReplayResult`; ``print(result)`` explains it.

    Raises:
        FileNotFoundError, ValueError: the bundle cannot be read.
        RuntimeError: the bundle's weights do not fit ``model``.
    """
    bundle = load_bundle(bundle_path, trusted=trusted)
    target = _pick_device(bundle, device)
    result = ReplayResult(
        reproduced=False, check=bundle.get("check"), where=bundle.get("where"), epoch=bundle.get("epoch"),
        batch_idx=bundle.get("batch_idx"), global_step=bundle.get("global_step"), seed=bundle.get("seed"),
        rank=bundle.get("rank"), bundle=str(bundle_path), device=str(target),
    )
    log.info("lightning_sanity replay: loading %s into %s", bundle_path, type(model).__name__)
    with isolate_rng(include_cuda=torch.cuda.is_available()), torch.enable_grad():
        _run(bundle, model, target, result)
    return result


def _prepare(bundle: Mapping[str, Any], model: nn.Module, device: torch.device) -> None:
    precision = bundle.get("precision", "32-true")
    if precision in _TRUE_DTYPES:
        model.to(_TRUE_DTYPES[precision])
    try:
        model.load_state_dict(bundle["model_state"])
    except RuntimeError as err:
        raise RuntimeError(
            f"`replay`: the bundle's weights do not fit {type(model).__name__}: {err}. Pass a fresh instance built "
            f"with the same arguments as in training (the bundle was made from {bundle.get('model_class')}"
            + (f" with hparams {bundle['hparams']}" if bundle.get("hparams") else "") + ")."
        ) from None
    model.to(device)
    model.train()
    modes = bundle.get("module_modes") or {}
    for name, module in model.named_modules():
        if name in modes:
            module.training = bool(modes[name])


def _manual_optimizers(bundle: Mapping[str, Any], model: nn.Module, result: ReplayResult) -> list:
    try:
        optimizers = optimizers_of(model.configure_optimizers())
        states = bundle.get("optimizer_states") or []
        if len(states) == len(optimizers):
            for opt, state in zip(optimizers, states):
                opt.load_state_dict(state)
        return optimizers or [_NullOptimizer()]
    except Exception as err:
        result.notes.append(f"the model's optimizers could not be built ({err!r}); optimizer steps were not taken")
        return [_NullOptimizer()]


def _run(bundle: Mapping[str, Any], model: nn.Module, device: torch.device, result: ReplayResult) -> None:
    _prepare(bundle, model, device)
    batch = apply_to_collection(bundle["batch"], Tensor, lambda t: t.to(device))
    result.nonfinite_inputs = [n for n, t in tensors_in(batch) if not is_finite(t)]
    result.nonfinite_weights = [n for n, p in model.named_parameters() if not is_finite(p)][:10]
    bn_before = _batchnorm_before(model) if bundle.get("check") == "batchnorm-variance" else None

    watch = _BackwardWatch(bundle.get("grad_scale"), list(model.parameters()))
    automatic = bool(bundle.get("automatic_optimization", True))
    optimizers = [] if automatic else _manual_optimizers(bundle, model, result)
    had_trainer = _attached_trainer(model)
    overrides: dict[str, Any] = {
        "log": lambda *a, **k: None,
        "log_dict": lambda *a, **k: None,
        "manual_backward": watch.backward,
        "optimizers": lambda use_pl_optimizer=True: optimizers[0] if len(optimizers) == 1 else optimizers,
        "lr_schedulers": lambda: None,
        "toggle_optimizer": lambda *a, **k: None,
        "untoggle_optimizer": lambda *a, **k: None,
        "clip_gradients": _clip_gradients(model),
    }
    for name, fn in overrides.items():
        object.__setattr__(model, name, fn)
    if isinstance(model, LightningModule):
        fields = {"current_epoch": bundle.get("epoch") or 0, "global_step": bundle.get("global_step") or 0,
                  "global_rank": bundle.get("rank") or 0, "world_size": 1, "precision": bundle.get("precision")}
        fields.update(bundle.get("trainer") or {})
        model.trainer = _ReplayTrainer(fields, optimizers, [])
    outputs = _ModuleOutputs(model)
    calls = _FirstNonFiniteCall()
    precision = bundle.get("precision", "32-true")
    autocast_dtype = _AUTOCAST.get(precision)
    if precision == "16-mixed" and device.type == "cpu":
        autocast_dtype = torch.bfloat16  # what Lightning falls back to on CPU
    restore_rng_states(bundle["rng"])
    output = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autograd.detect_anomaly(check_nan=True):
                log.info("lightning_sanity replay: running training_step(batch, %s)", bundle.get("batch_idx"))
                with calls, torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                           enabled=autocast_dtype is not None):
                    output = model.training_step(batch, bundle.get("batch_idx", 0))
                loss = _loss_of(output)
                if automatic and loss is not None and loss.requires_grad and not watch.ran:
                    log.info("lightning_sanity replay: running backward with anomaly detection")
                    watch.backward(loss)
        watch.source = watch.source or _forward_source(caught)
    finally:
        outputs.remove()
        for name in overrides:
            try:
                object.__delattr__(model, name)
            except AttributeError:
                pass
        if isinstance(model, LightningModule):
            model.trainer = had_trainer
    result.loss = float(loss.detach().float().sum()) if (loss := _loss_of(output)) is not None else None
    result.module = outputs.first or None  # "" is the LightningModule itself: say "no submodule"
    if outputs.first == "":
        result.notes.append("the first non-finite output came from the LightningModule's own forward code")
    result.forward_op = calls.first
    result.op = watch.first_op or watch.anomaly_op
    result.source = watch.source
    if watch.error:
        result.notes.append(f"backward raised: {watch.error}")
    result.nonfinite_gradients = [n for n, p in model.named_parameters() if p.grad is not None and not is_finite(p.grad)][:10]
    loss_bad = result.loss is not None and not np.isfinite(result.loss)
    nonfinite = bool(loss_bad or result.module or calls.first or result.op or result.nonfinite_gradients
                     or result.nonfinite_weights)
    if bundle.get("check") == "batchnorm-variance":
        result.batchnorm = _batchnorm_verdict(bn_before, bundle.get("where"), bundle.get("extra"))
        result.reproduced = bool(result.batchnorm and result.batchnorm["fired"]) or nonfinite
    else:
        result.reproduced = nonfinite
    if not result.reproduced:
        result.notes.append(
            "the step stayed finite: it may depend on state the bundle cannot hold (a module hook that runs before "
            "training_step, another device's numerics, or data changed in place after the step started)"
        )
    for name, p in model.named_parameters():
        if p.grad is not None and not is_finite(p.grad) and name == (result.nonfinite_gradients or [None])[0]:
            counts = count_nonfinite(p.grad)
            result.notes.append(f"{name}: {counts['nan']} NaN and {counts['inf']} Inf of {counts['numel']} gradient values")
            break
