"""The state of one training step that the checks share: capture, the one host sync, gradient norms.

**One host-device sync per step.** A check that needs device figures on the host during a step does not read
them itself (each ``.item()`` / ``.tolist()`` waits for the device): it hands them over with
:func:`request_values` and picks them up after the step's single read, :func:`resolve_step_reads`, with
:func:`step_values`. The ``non-finite`` sentinel makes that read together with its own flag; without the
sentinel, the check calls :func:`resolve_step_reads` itself. That function is where the rule is enforced: it
gathers every pending request into ONE transfer.

- :class:`StepCapture`: at the start of every training batch, a *reference* to the batch (no copy), the RNG
  states (a few kilobytes, read without drawing) and a device-side copy of every BatchNorm layer's running
  statistics (a few floats per channel, one fused copy). A replay bundle needs them only when something goes
  wrong, but by then the RNGs and running statistics have moved on. :func:`save_step_bundle` writes the replay
  bundle of the current step, once per step, never raising.
- Shared gradient norms: the norms monitor already reduces every gradient of an optimizer to per-tensor norms;
  it hands them over with :func:`share_grad_norms`, and the ``non-finite`` sentinel reads them
  (:func:`shared_grad_norms`) instead of reducing all the gradients a second time.

Used by ``non-finite`` (:mod:`lightning_sanity.callbacks.nonfinite`), ``batchnorm-variance`` and the norms
monitor; one state per Trainer, by weak reference.
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
import weakref
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from lightning_sanity.checks.batchnorm import STAT_BUFFERS, batchnorm_layers, stat_buffer_keys
from lightning_sanity.findings import global_seed
from lightning_sanity.replays.bundle import bundle_relpath, make_bundle, write_bundle
from lightning_sanity.replays.rng import capture_rng_states

log = logging.getLogger(__name__)


class _Shared:
    """What the checks of one Trainer share: the step capture, the step reads and the handed-over norms."""

    __slots__ = ("capture", "pending", "results", "norms", "__weakref__")

    def __init__(self) -> None:
        self.capture = StepCapture()
        self.pending: dict[str, Any] = {}
        self.results: dict[str, list[float]] = {}
        self.norms: Optional[tuple] = None


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The hot path asks for the same Trainer several times a step: remember the last one. Both by weak reference: a new
# Trainer that happens to get the same address is never mistaken for it, and nothing outlives its Trainer.
_last: tuple[Any, Any] = (lambda: None, lambda: None)


def _shared(trainer: Any) -> _Shared:
    global _last
    if _last[0]() is trainer:
        shared = _last[1]()
        if shared is not None:
            return shared
    shared = _SHARED.get(trainer)
    if shared is None:
        shared = _SHARED[trainer] = _Shared()
    _last = (weakref.ref(trainer), weakref.ref(shared))
    return shared


def _initialized(t: Optional[Tensor]) -> bool:
    return t is not None and not isinstance(t, nn.parameter.UninitializedBuffer)


class StepCapture:
    """The state of the current training step that a replay bundle needs (see the module docstring)."""

    def __init__(self) -> None:
        self.key: Optional[tuple] = None
        self.batch: Any = None
        self.batch_idx: int = 0
        self.epoch: int = 0
        self.global_step: int = 0
        self.rng: Optional[dict[str, Any]] = None
        self.bn_names: list[str] = []
        self._bn_model: Optional[nn.Module] = None
        self._bn_slots: list[str] = []  # state_dict keys of every BatchNorm buffer, initialized or not
        self._bn_dicts: list[dict] = []  # each slot's module ``_buffers`` (BatchNorm's statistics are buffers)
        self._bn_keys: list[str] = []  # the buffer name of each slot
        self._bn_raw: list[Optional[Tensor]] = []
        #: the live BatchNorm buffers (``bn_names`` order) and their copies as they were at the start of the step
        self.bn_sources: list[Tensor] = []
        self.bn_copies: list[Tensor] = []
        #: bundles written in this fit, by global step -> relative path
        self.written: dict[int, str] = {}
        self._holders: set[int] = set()

    def capture(self, trainer: Any, pl_module: nn.Module, batch: Any, batch_idx: int, holder: Any) -> None:
        """Capture the step (once, whoever asks first); ``holder`` keeps the batch until it calls :meth:`done`."""
        epoch = trainer.current_epoch
        if self._holders and batch is self.batch and batch_idx == self.batch_idx and epoch == self.epoch:
            # Captured by another check at the start of this batch (the holders let go of it at its end); this
            # test spares reading the step counter a second time, which costs more than everything else here.
            self._holders.add(id(holder))
            return
        step = trainer.global_step
        key = (id(trainer), epoch, batch_idx, step)
        self._holders.add(id(holder))
        if key == self.key:
            return
        self._holders = {id(holder)}
        self.key = key
        self.batch, self.batch_idx, self.epoch, self.global_step = batch, batch_idx, epoch, step
        self.rng = capture_rng_states()
        self._snapshot_batchnorm(pl_module)

    def _snapshot_batchnorm(self, pl_module: nn.Module) -> None:
        if self._bn_model is not pl_module:  # walking every module each step would cost more than the copy
            layers = batchnorm_layers(pl_module)
            self._bn_model = pl_module
            self._bn_slots = stat_buffer_keys(layers)
            self._bn_dicts = [m._buffers for _, m in layers for _ in STAT_BUFFERS]
            self._bn_keys = [buffer for _ in layers for buffer in STAT_BUFFERS]
            self._bn_raw, self.bn_names, self.bn_sources, self.bn_copies = [], [], [], []
        if not self._bn_dicts:
            return
        raw = list(map(dict.get, self._bn_dicts, self._bn_keys))
        if len(raw) == len(self.bn_sources) and all(map(operator.is_, raw, self._bn_raw)):
            torch._foreach_copy_(self.bn_copies, self.bn_sources)  # buffers: no autograd to keep out
            return
        # The buffers changed (first step, a lazy layer materialized in place, a buffer replaced): take them anew.
        self._bn_raw = raw
        keep = [i for i, t in enumerate(raw) if _initialized(t)]
        self.bn_names = [self._bn_slots[i] for i in keep]
        self.bn_sources = [raw[i] for i in keep]
        with torch.no_grad():
            self.bn_copies = [t.detach().clone() for t in self.bn_sources]

    def done(self, holder: Any) -> None:
        """``holder`` will write no bundle for this step: the last one to say so lets go of the batch.

        Called from ``on_train_batch_end``, while Lightning's loop still holds the batch, so that freeing it stays
        Lightning's business instead of landing in the next step's capture (its memory is released sooner, too).
        """
        self._holders.discard(id(holder))
        if not self._holders:
            self.batch = None

    def batchnorm_state(self) -> dict[str, Tensor]:
        """BatchNorm running statistics as they were at the start of the step, by ``state_dict`` key."""
        return dict(zip(self.bn_names, self.bn_copies))

    def release(self) -> None:
        """Drop the batch reference (end of fit), so nothing outlives the run."""
        self.batch, self.key, self.rng = None, None, None
        self._holders = set()

    def reset(self) -> None:
        """Start of a fit: forget the previous fit's step and bundles."""
        self.release()
        self.written.clear()
        self._bn_model, self._bn_slots, self._bn_dicts, self._bn_keys, self._bn_raw = None, [], [], [], []


def capture_for(trainer: Any) -> StepCapture:
    """The one :class:`StepCapture` of ``trainer``, created on first use."""
    return _shared(trainer).capture


def capture_step(trainer: Any, pl_module: nn.Module, batch: Any, batch_idx: int, holder: Any) -> StepCapture:
    """At the start of a training batch: capture it (:meth:`StepCapture.capture`), and forget the norms handed
    over in the previous step, so that a reader never takes them for this step's. Returns the capture."""
    shared = _shared(trainer)
    shared.norms = None
    shared.capture.capture(trainer, pl_module, batch, batch_idx, holder)
    return shared.capture


def save_step_bundle(
    trainer: Any,
    pl_module: nn.Module,
    log_dir: Optional[str],
    *,
    check: str,
    where: Optional[str],
    kind: Optional[str],
    global_step: Optional[int] = None,
    extra: Optional[dict[str, Any]] = None,
) -> Optional[str]:
    """Write the current step's replay bundle (once per step) and return its path relative to ``log_dir``.

    Returns None, after a log line, when it cannot be written: a failure here must not lose the user's run.
    """
    capture = capture_for(trainer)
    step = capture.global_step if global_step is None else global_step
    if step in capture.written:
        return capture.written[step]
    if capture.rng is None or log_dir is None:
        return None
    rel = bundle_relpath(step)
    try:
        bundle = make_bundle(
            trainer, pl_module, capture.batch, capture.batch_idx, capture.rng, check=check, where=where, kind=kind,
            seed=global_seed(), rank=trainer.global_rank, epoch=capture.epoch, global_step=step,
            model_state=capture.batchnorm_state(), extra=extra,
        )
        write_bundle(os.path.join(log_dir, rel), bundle)
    except Exception as err:  # never lose the run for a bundle
        log.warning("lightning_sanity: could not write the replay bundle %s: %r", rel, err)
        return None
    capture.written[step] = rel
    return rel


# --------------------------------------------------------------------------- step reads


def request_values(trainer: Any, name: str, tensors: Union[list[Tensor], Callable[[], Optional[list[Tensor]]]]) -> None:
    """Hand over device tensors (any shape, numeric or bool) to be read in the step's one host sync.

    ``tensors`` may be a function that makes them (or returns None: nothing to read) when the read happens: the
    figures are then computed next to the reader's own, where the same kernels have just run.
    """
    shared = _shared(trainer)
    shared.pending[name] = tensors
    shared.results.pop(name, None)


def step_values(trainer: Any, name: str) -> Optional[list[float]]:
    """The requested tensors' values, flattened and concatenated, once read (and forget them); else None."""
    return _shared(trainer).results.pop(name, None)


def values_pending(trainer: Any, name: str) -> bool:
    return name in _shared(trainer).pending


def resolve_step_reads(trainer: Any, own: Sequence[Tensor] = ()) -> list[float]:
    """Read ``own`` (device tensors, any shape) and every pending request in ONE host transfer: the step's one
    host sync (see the module docstring).

    Returns ``own``'s values, flattened and concatenated; the requests' values go to :func:`step_values`.
    """
    shared = _shared(trainer)
    if not shared.pending:  # most steps: the caller's own figures only
        return _chain(_read(own)) if own else []
    requests = []
    for name, tensors in list(shared.pending.items()):
        if callable(tensors):
            try:
                tensors = tensors()
            except Exception as err:  # the requester's failure must not take the reader down
                log.warning("lightning_sanity: the step figures %r could not be computed: %r", name, err)
                tensors = None
        if tensors is not None:
            requests.append((name, tensors))
    shared.pending.clear()
    parts = [*own, *(t for _, tensors in requests for t in tensors)]
    if not parts:
        return []
    values = _read(parts)
    start = len(own)
    for name, tensors in requests:
        shared.results[name] = _chain(values[start:start + len(tensors)])
        start += len(tensors)
    return _chain(values[:len(own)])


def _chain(lists: list[list[float]]) -> list[float]:
    return list(itertools.chain.from_iterable(lists))


_is_cpu = operator.attrgetter("is_cpu")


def _read(parts: list[Tensor]) -> list[list[float]]:
    """The values of each of ``parts``, flattened, as floats."""
    # Nothing to transfer on the CPU: reading each part costs less than gathering them into one tensor first.
    return _read_each(parts) if all(map(_is_cpu, parts)) else _read_gathered(parts)


def _read_each(parts: list[Tensor]) -> list[list[float]]:
    # A 0-dim part (a loss, a norm) is read without the view a reshape makes.
    return [[float(p.item())] if p.dim() == 0 else list(map(float, (p if p.dim() == 1 else p.reshape(-1)).tolist()))
            for p in parts]


def _read_gathered(parts: list[Tensor]) -> list[list[float]]:
    # One transfer. float32 holds every figure read here (means, counts below 2**24) and exists on every backend.
    device = parts[0].device
    flat = torch.cat([p.reshape(-1).to(device, torch.float32) for p in parts]).tolist()
    values, start = [], 0
    for p in parts:
        values.append(flat[start:start + p.numel()])
        start += p.numel()
    return values


def forget_step_reads(trainer: Any) -> None:
    shared = _shared(trainer)
    shared.pending.clear()
    shared.results.clear()
    shared.norms = None


# --------------------------------------------------------------------------- shared norms


def share_grad_norms(trainer: Any, optimizer: Any, params: list[Tensor], norms: Tensor) -> None:
    """Hand over the L2 norm of each of ``params``' gradients (a device vector), for this step only.

    ``params`` must be every parameter of ``optimizer``, in ``param_groups`` order, each with a gradient. They
    are forgotten at the start of the next batch (:func:`capture_step`): a later step never takes them for its own.
    """
    _shared(trainer).norms = (id(optimizer), len(params), params[0] if params else None, norms)


def shared_grad_norms(trainer: Any, optimizer: Any, params: list[Tensor]) -> Optional[Tensor]:
    """The norms handed over for exactly these ``params`` of ``optimizer`` in this step, else None."""
    state = _shared(trainer)
    shared, state.norms = state.norms, None
    if shared is None or not params:
        return None
    key, count, first, norms = shared
    if key != id(optimizer) or count != len(params) or first is not params[0]:
        return None
    return norms
