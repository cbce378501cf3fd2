"""Replay bundles: one file holding everything needed to re-run one training step, and the replay itself.

A bundle is written by the ``non-finite`` and ``batchnorm-variance`` checks to
``<log_dir>/sanity/replay/step_<global_step>.pt`` (:func:`write_bundle`). It holds the model's state before the
step's update, the batch exactly as ``training_step`` received it, the RNG states at the start of the step (torch
CPU and CUDA, numpy, python), the optimizer and scheduler states, epoch / batch / step / seed / rank, the Trainer
settings ``training_step`` may read, and the library versions. It is a ``torch.save`` file of plain containers and
tensors, readable with ``torch.load(..., weights_only=True)`` unless the batch itself holds custom Python objects.

:func:`replay` loads a bundle into a fresh instance of the user's LightningModule and re-runs that
``training_step`` on the CPU (or the bundle's device), watching every module's output, every torch call and, with
``torch.autograd.detect_anomaly``, every backward op. It runs without a ``Trainer`` on purpose: a Trainer would
run a whole fit loop (dataloaders, optimizers, loggers, other callbacks, validation) that cannot start at an
arbitrary step without private state, and anything it drew from the random generators would change what is being
replayed. A small stand-in answers ``self.trainer.global_step``, ``current_epoch`` and the other recorded
settings; ``self.log`` does nothing during a replay.

Example::

    import lightning_sanity
    result = lightning_sanity.replay("lightning_logs/version_0/sanity/replay/step_212.pt", MyModel())
    print(result)            # what went non-finite first, where, and the autograd op
    result.reproduced, result.module, result.op

:class:`FastForward` re-runs a seeded fit up to a reported epoch and batch and hands back that batch.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import platform
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.seed import isolate_rng
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from typing_extensions import override

from lightning_sanity._compat import optimizers_of
from lightning_sanity.checks import batchnorm as bn_math
from lightning_sanity.checks.numerics import anomaly_op, count_nonfinite, is_finite, tensors_in

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- RNG states


class _StateReader:
    """A generator's state, reused while the bytes that hold it have not moved since the last full read.

    Most training steps draw nothing from numpy or Python's ``random``, yet a full read of either builds a 624-word
    state every time. Both are MT19937 generators whose whole state is 2,500 bytes at a fixed address: comparing
    them costs well under a microsecond. The shortcut checks itself against a full read once per generator and
    falls back to the full read on anything unexpected (another layout, another interpreter, an error).
    """

    _BYTES = 624 * 4 + 4  # uint32 key[624] and int pos (numpy) / int index and uint32 state[624] (Python)

    def __init__(self) -> None:
        self._generator: Any = None
        self._memory: Any = None  # a ctypes view of the generator's state, valid while self._generator lives
        self._raw: Optional[bytes] = None
        self._state: Any = None
        self._fast = True

    def get(self) -> Any:
        if not self._fast:
            return self._read()
        try:
            generator = self._current()
            if generator is not self._generator:
                self._generator, self._raw, self._state = generator, None, None
                address = self._address(generator)
                self._memory = None if address is None else (ctypes.c_char * self._BYTES).from_address(address)
            if self._memory is None:
                return self._read()
            raw = self._memory.raw
            if raw == self._raw and self._unchanged(generator):
                return self._state
            state = self._read()
            if self._raw is None and not self._matches(raw, state):
                self._fast = False  # not the layout this relies on
                return state
            self._raw, self._state = raw, state
            return state
        except Exception:
            self._fast = False
            return self._read()

    def _current(self) -> Any:
        """The object that owns the generator's state now."""
        raise NotImplementedError

    def _address(self, generator: Any) -> Optional[int]:
        """Where the 2,500 bytes of state start, or None where this generator has no such layout."""
        raise NotImplementedError

    def _read(self) -> Any:
        """The full state, as the library returns it."""
        raise NotImplementedError

    def _unchanged(self, generator: Any) -> bool:
        """What the bytes do not hold is as it was at the last full read."""
        raise NotImplementedError

    def _matches(self, raw: bytes, state: Any) -> bool:
        """``raw`` holds exactly ``state``'s words (checked once per generator)."""
        raise NotImplementedError


class _NumpyState(_StateReader):
    """``np.random.get_state()`` of numpy's legacy global generator (an MT19937 bit generator)."""

    def _current(self) -> Any:
        return np.random.mtrand._rand._bit_generator

    def _address(self, generator: Any) -> Optional[int]:
        return generator.ctypes.state_address if type(generator).__name__ == "MT19937" else None

    def _read(self) -> Any:
        return np.random.get_state()

    def _unchanged(self, generator: Any) -> bool:
        # A cached Gaussian (``has_gauss``) can be used up without moving the bytes: reuse only a state without one
        # (caching a new one takes a draw, which moves them).
        return not self._state[3]

    def _matches(self, raw: bytes, state: Any) -> bool:
        return (raw[:-4] == np.asarray(state[1], dtype=np.uint32).tobytes()
                and int.from_bytes(raw[-4:], "little", signed=True) == state[2])


class _PythonState(_StateReader):
    """``random.getstate()`` of Python's global ``random`` instance (CPython's ``_random.Random``)."""

    def _current(self) -> Any:
        return random._inst

    def _address(self, generator: Any) -> Optional[int]:
        import _random

        if platform.python_implementation() != "CPython" or not isinstance(generator, _random.Random):
            return None
        return id(generator) + object.__basicsize__  # after the object header: int index, uint32 state[624]

    def _read(self) -> Any:
        return random.getstate()

    def _unchanged(self, generator: Any) -> bool:
        # ``gauss_next`` lives outside the bytes: the same object as at the last read, or the state has moved.
        return generator.gauss_next is self._state[2]

    def _matches(self, raw: bytes, state: Any) -> bool:
        words = state[1]
        return (int.from_bytes(raw[:4], "little", signed=True) == words[-1]
                and raw[4:] == np.asarray(words[:-1], dtype=np.uint32).tobytes())


_NUMPY_STATE = _NumpyState()
_PYTHON_STATE = _PythonState()


def capture_rng_states() -> dict[str, Any]:
    """The global RNG states, cheaply and without consuming them (``get_state`` draws nothing).

    Raw objects as the libraries return them; :func:`write_bundle` turns them into plain containers.
    """
    cuda = None
    if torch.cuda.is_initialized():  # only once CUDA is in use (which implies it is available)
        cuda = torch.cuda.get_rng_state_all()
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": _NUMPY_STATE.get(), "python": _PYTHON_STATE.get()}


def _portable_rng(states: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": states["torch"], "cuda": states.get("cuda")}
    name, keys, pos, has_gauss, gauss = states["numpy"][:5]
    out["numpy"] = {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                    "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
    version, internal, gauss_next = states["python"]
    out["python"] = {"version": int(version), "state": [int(v) for v in internal], "gauss_next": gauss_next}
    return out


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Set the global RNGs from a bundle's ``rng`` entry (portable form)."""
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        cuda = list(states["cuda"])[: torch.cuda.device_count()]
        for i, state in enumerate(cuda):
            torch.cuda.set_rng_state(state, i)
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


# --------------------------------------------------------------------------- writing and reading bundles


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


# --------------------------------------------------------------------------- the replay result


@dataclasses.dataclass
class ReplayResult:
    """What a replay found. ``reproduced``, ``module`` and ``op`` are the contract's; the rest helps reading it.

    Attributes:
        reproduced: the step went wrong again (a non-finite loss, output or gradient; for a ``batchnorm-variance``
            bundle, the layer's variance test fired again).
        module: qualified name (as in ``named_modules()``) of the first module, in execution order, whose output
            was non-finite; None when no submodule's output was.
        op: the autograd op whose gradient first became non-finite during backward (e.g. ``"LogBackward0"``).
    """

    reproduced: bool
    module: Optional[str] = None
    op: Optional[str] = None
    loss: Optional[float] = None
    forward_op: Optional[str] = None
    source: Optional[str] = None
    nonfinite_inputs: list[str] = dataclasses.field(default_factory=list)
    nonfinite_weights: list[str] = dataclasses.field(default_factory=list)
    nonfinite_gradients: list[str] = dataclasses.field(default_factory=list)
    batchnorm: Optional[dict[str, Any]] = None
    check: Optional[str] = None
    where: Optional[str] = None
    epoch: Optional[int] = None
    batch_idx: Optional[int] = None
    global_step: Optional[int] = None
    seed: Optional[int] = None
    rank: Optional[int] = None
    bundle: Optional[str] = None
    device: str = "cpu"
    notes: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        when = f"epoch {self.epoch}, batch {self.batch_idx}, global step {self.global_step}"
        head = f"Replay of {self.bundle} ({self.check} at {when}; seed {self.seed}; rank {self.rank}; on {self.device})"
        lines = [head, f"  reproduced: {'yes' if self.reproduced else 'no'}"]
        lines.append(f"  loss: {self.loss}")
        if self.nonfinite_inputs:
            lines.append(f"  non-finite values already in the batch: {', '.join(self.nonfinite_inputs)}")
        if self.nonfinite_weights:
            lines.append(f"  non-finite weights before the step: {', '.join(self.nonfinite_weights)}")
        lines.append(f"  first module with a non-finite output: {self.module if self.module is not None else '-'}")
        lines.append(f"  first torch call with a non-finite result: {self.forward_op or '-'}")
        lines.append(f"  first autograd op with a non-finite gradient: {self.op or '-'}")
        if self.source:
            lines.append(f"  forward code of that op: {self.source}")
        if self.nonfinite_gradients:
            more = "" if len(self.nonfinite_gradients) < 10 else ", ..."
            lines.append(f"  parameters with non-finite gradients: {', '.join(self.nonfinite_gradients)}{more}")
        if self.batchnorm:
            b = self.batchnorm
            lines.append(
                f"  BatchNorm {b['layer']}: batch variance x{b['batch_ratio']:.3g} the running estimate, running "
                f"variance x{b['jump']:.3g} in this step"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------- watching a step


class _FirstNonFiniteCall(TorchFunctionMode):
    """Records the first torch call whose floating-point result holds a NaN or Inf (the mode is off in here)."""

    def __init__(self) -> None:
        super().__init__()
        self.first: Optional[str] = None

    def __torch_function__(self, func: Callable, types_: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.first is None:
            try:
                if any(not is_finite(t) for _, t in tensors_in(out)):
                    self.first = getattr(func, "__name__", None) or repr(func)
            except Exception:
                pass
        return out


class _ModuleOutputs:
    """Forward hooks on every module: the first one, in execution order, whose output is non-finite."""

    def __init__(self, model: nn.Module) -> None:
        self.first: Optional[str] = None
        self.first_type: Optional[str] = None
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in model.named_modules()]

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self.first is None and any(not is_finite(t) for _, t in tensors_in(output)):
                self.first, self.first_type = name, type(module).__name__

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class _BackwardWatch:
    """Runs backward with anomaly detection and a hook on every graph node; keeps the first non-finite op."""

    def __init__(self, scale: Optional[float], params: list[Tensor]) -> None:
        self.scale = scale
        self.params = params
        self.first_op: Optional[str] = None
        self.anomaly_op: Optional[str] = None
        self.source: Optional[str] = None
        self.error: Optional[str] = None
        self.ran = False

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        self.ran = True
        if not isinstance(loss, Tensor) or loss.grad_fn is None:
            return
        root = loss * self.scale if self.scale else loss
        handles = self._hook_graph(root.grad_fn)
        grads_before = [p.grad.clone() if p.grad is not None else None for p in self.params]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    root.backward(*args, **{**kwargs, "retain_graph": True})
                except RuntimeError as err:
                    op = anomaly_op(str(err))
                    if op is None:
                        self.error = str(err).splitlines()[0]
                        return
                    self.anomaly_op = self.anomaly_op or op
                    # Anomaly mode stopped backward at the op; finish it without, so the gradients can be read
                    # (and a manual-optimization step goes on as it did in training).
                    # The aborted pass may have accumulated some gradients already: start again from before it.
                    for p, g in zip(self.params, grads_before):
                        p.grad = g
                    with torch.autograd.set_detect_anomaly(False):
                        root.backward(*args, **kwargs)
            self.source = self.source or _forward_source(caught)
        finally:
            for h in handles:
                h.remove()

    def _hook_graph(self, root: Any) -> list[Any]:
        handles, seen, stack = [], set(), [root]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            try:
                handles.append(node.register_hook(self._node_hook(node)))
            except Exception:
                pass
            stack.extend(n for n, _ in getattr(node, "next_functions", ()))
        return handles

    def _node_hook(self, node: Any) -> Callable:
        def hook(grad_inputs: tuple, grad_outputs: tuple) -> None:
            if self.first_op is None and any(g is not None and not is_finite(g) for g in grad_inputs):
                self.first_op = type(node).__name__

        return hook


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')


def _forward_source(caught: list) -> Optional[str]:
    """``file.py:42 in forward: return torch.log(x)`` from anomaly mode's forward traceback, user code only."""
    for w in caught:
        text = str(w.message)
        if "Traceback of forward call" not in text:
            continue
        frames = _FRAME.findall(text)
        own = [f for f in frames if not re.search(r"[/\\](torch|lightning|lightning_sanity)[/\\]", f[0])]
        chosen = (own or frames)[-1:] if frames else []
        for file, line, func, code in chosen:
            return f"{os.path.basename(file)}:{line} in {func}: {code.strip()}"
    return None


class _ReplayTrainer:
    """Stands in for the Trainer during a replay: the recorded settings, nothing that runs a loop."""

    def __init__(self, fields: Mapping[str, Any], optimizers: list, schedulers: list) -> None:
        self.__dict__.update(dict(fields))
        self.__dict__.update(
            training=True, sanity_checking=False, validating=False, testing=False, predicting=False,
            logger=None, loggers=[], callbacks=[], optimizers=optimizers, lr_scheduler_configs=schedulers,
            callback_metrics={}, logged_metrics={}, progress_bar_metrics={}, should_stop=False, barebones=False,
        )
        self.__dict__.setdefault("is_global_zero", True)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"`trainer.{name}` is not available while replaying a step: the replay runs `training_step` without a "
            "Trainer. Read it once in `setup`/`on_fit_start` and keep it on the module if the step needs it."
        )


class _NullOptimizer:
    """Used in replays of manual optimization when the model's optimizers cannot be built: steps do nothing."""

    param_groups: list = []

    def step(self, closure: Optional[Callable] = None) -> Any:
        return closure() if closure is not None else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


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


def _attached_trainer(model: nn.Module) -> Any:
    if not isinstance(model, LightningModule):
        return None
    try:
        return model.trainer
    except RuntimeError:  # not attached
        return None


def _clip_gradients(model: nn.Module) -> Callable:
    def clip(optimizer: Any, gradient_clip_val: Optional[float] = None, gradient_clip_algorithm: Optional[str] = None) -> None:
        if gradient_clip_val is None:
            return
        params = [p for p in model.parameters() if p.grad is not None]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    return clip


# --------------------------------------------------------------------------- fast-forward


class FastForward(Callback):
    """Re-run a seeded fit up to ``(epoch, batch_idx)`` and keep that batch, then stop.

    Seed as the original run did (``lightning.seed_everything(seed, workers=True)`` before building the model
    and data), build everything the same way, and fit with this callback: with the same seed the same batch comes
    out of the same dataloader at the same epoch and batch index. The fit stops once that step has run;
    ``batch`` (on the CPU) and ``model_state`` (weights at the start of that step) are then set.

    Args:
        epoch: the finding's ``epoch``.
        batch_idx: the finding's ``batch_idx``.

    Raises:
        ValueError: a negative or non-integer epoch or batch index.

    Example::

        >>> ff = FastForward(epoch=3, batch_idx=17)
        >>> ff.batch is None
        True
    """

    def __init__(self, epoch: int, batch_idx: int) -> None:
        for name, value in (("epoch", epoch), ("batch_idx", batch_idx)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"`FastForward` got {name}={value!r}; expected a non-negative integer.")
        self.epoch, self.batch_idx = epoch, batch_idx
        self.batch: Any = None
        self.model_state: Optional[dict[str, Tensor]] = None

    @override
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch_idx and self.batch is None:
            self.batch = apply_to_collection(batch, Tensor, lambda t: t.detach().cpu().clone())
            self.model_state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
            trainer.should_stop = True
