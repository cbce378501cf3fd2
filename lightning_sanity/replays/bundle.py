"""Replay bundles: one file holding everything needed to re-run one training step.

:func:`make_bundle` gathers it, :func:`write_bundle` writes it to ``<log_dir>/sanity/replay/step_<global_step>.pt``
(:func:`bundle_relpath`), :func:`load_bundle` reads it back. What a bundle holds is listed in
:mod:`lightning_sanity.replays`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn

from lightning_sanity.replays.rng import _portable_rng

BUNDLE_FORMAT = "lightning_sanity.replay/1"
#: Where bundles go, relative to ``trainer.log_dir``.
REPLAY_DIR = os.path.join("sanity", "replay")

#: Trainer attributes recorded in the bundle, so ``training_step`` code that reads them replays the same way.
_TRAINER_FIELDS = (
    "current_epoch", "global_step", "max_epochs", "max_steps", "min_epochs", "min_steps", "accumulate_grad_batches",
    "num_training_batches", "log_every_n_steps", "check_val_every_n_epoch", "precision", "world_size",
    "global_rank", "local_rank", "node_rank", "num_nodes", "num_devices", "is_global_zero",
    "estimated_stepping_batches", "gradient_clip_val", "gradient_clip_algorithm",
)


def bundle_relpath(global_step: int) -> str:
    """``"sanity/replay/step_212.pt"``: a bundle's path relative to ``trainer.log_dir`` (the finding's ``replay``)."""
    return f"sanity/replay/step_{int(global_step)}.pt"


def _to_cpu(obj: Any) -> Any:
    return apply_to_collection(obj, Tensor, lambda t: t.detach().cpu())


def _plain(value: Any) -> bool:
    # Exact types: subclasses (a TorchVersion, an enum) need full unpickling, which bundles avoid.
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (list, tuple):
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def library_versions() -> dict[str, str]:
    import lightning

    import lightning_sanity

    versions = {"torch": torch.__version__, "lightning": lightning.__version__, "numpy": np.__version__,
                "python": platform.python_version(), "lightning_sanity": lightning_sanity.__version__}
    return {k: str(v) for k, v in versions.items()}


def _trainer_fields(trainer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _TRAINER_FIELDS:
        try:
            value = getattr(trainer, name)
        except Exception:  # some properties need a set-up loop; leave them out
            continue
        if isinstance(value, float) and not np.isfinite(value):
            value = float(value)
        if _plain(value):
            out[name] = value
    return out


def make_bundle(
    trainer: Any,
    pl_module: nn.Module,
    batch: Any,
    batch_idx: int,
    rng: Mapping[str, Any],
    *,
    check: str,
    where: Optional[str] = None,
    kind: Optional[str] = None,
    seed: Optional[int] = None,
    rank: int = 0,
    epoch: Optional[int] = None,
    global_step: Optional[int] = None,
    model_state: Optional[Mapping[str, Tensor]] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """Everything needed to replay one step, as plain containers of CPU tensors (see the module docstring).

    ``model_state`` replaces entries of ``pl_module.state_dict()`` (e.g. BatchNorm running statistics as they were
    at the start of the step).
    """
    state = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
    if model_state:
        state.update({k: v.detach().cpu() for k, v in model_state.items() if k in state})
    optimizers = [_to_cpu(opt.state_dict()) for opt in getattr(trainer, "optimizers", [])]
    schedulers = []
    for config in getattr(trainer, "lr_scheduler_configs", []) or []:
        try:
            schedulers.append(_to_cpu(config.scheduler.state_dict()))
        except Exception:
            schedulers.append(None)
    precision = getattr(trainer, "precision", "32-true")
    scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)
    cls = type(pl_module)
    hparams = getattr(pl_module, "hparams", {}) or {}
    fields = _trainer_fields(trainer)
    if epoch is not None:
        fields["current_epoch"] = int(epoch)
    if global_step is not None:
        fields["global_step"] = int(global_step)
    return {
        "format": BUNDLE_FORMAT,
        "check": check,
        "where": where,
        "kind": kind,
        "epoch": fields.get("current_epoch"),
        "batch_idx": int(batch_idx),
        "global_step": fields.get("global_step"),
        "seed": seed,
        "rank": int(rank),
        "model_class": f"{cls.__module__}:{cls.__qualname__}",
        "hparams": dict(hparams) if _plain(dict(hparams)) else None,
        "model_state": state,
        "module_modes": {name: bool(m.training) for name, m in pl_module.named_modules()},
        "automatic_optimization": bool(getattr(pl_module, "automatic_optimization", True)),
        "optimizer_states": optimizers,
        "scheduler_states": schedulers,
        "grad_scale": float(scaler.get_scale()) if scaler is not None else None,
        "precision": str(precision),
        "device": str(next(pl_module.parameters(), torch.empty(0)).device),
        "batch": _to_cpu(batch),
        "rng": _portable_rng(rng),
        "trainer": fields,
        "versions": library_versions(),
        "extra": dict(extra or {}),
    }


def write_bundle(path: Union[str, os.PathLike], bundle: Mapping[str, Any]) -> Path:
    """Write a bundle made by :func:`make_bundle` (atomically: a half-written file never has the final name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(dict(bundle), tmp)
    os.replace(tmp, path)
    return path


def load_bundle(path: Union[str, os.PathLike], trusted: bool = False) -> dict[str, Any]:
    """Read a replay bundle.

    Args:
        path: the bundle file (the finding's ``replay`` joined to the run's ``log_dir``).
        trusted: allow full unpickling. Bundles are read with ``weights_only=True`` first; a batch holding custom
            Python objects (a dataclass, a namedtuple) needs full unpickling, which can run code: only pass
            ``trusted=True`` for bundles you made.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a lightning_sanity bundle, or it needs ``trusted=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`load_bundle`: no replay bundle at {str(path)!r}; a finding's `replay` is relative "
                                "to the run's `trainer.log_dir`.")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if not trusted:
            raise ValueError(
                f"`load_bundle`: {path} holds objects that the safe loader refuses ({type(err).__name__}); if you "
                "made this bundle yourself, pass `trusted=True`."
            ) from None
        bundle = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"`load_bundle`: {path} is not a lightning_sanity replay bundle (format {BUNDLE_FORMAT}).")
    return bundle
