"""Calling the model on the fixed batch without an observer effect (under ``_extra_forward.eval_mode``): the tensor
to follow in whatever the forward returned, a watch for dropout ops run in training mode,
a per-module trace of a forward to locate a symptom, and the fixed batch itself (:class:`FixedBatch`). This is the
measuring side of :class:`~lightning_sanity.callbacks.predictions.PredictionDynamics`; nothing here judges.

Example::

    >>> import torch
    >>> from lightning_sanity.callbacks._extra_forward import eval_mode
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).train()
    >>> with torch.no_grad(), eval_mode(model):
    ...     out = model(torch.ones(4, 3))
    >>> model.training, model[1].training
    (True, True)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import torch
from lightning_utilities.core.apply_func import apply_to_collection

from lightning_sanity.batch import batch_size, first_tensor, slice_batch
from lightning_sanity.callbacks._extra_forward import module_calls
from lightning_sanity.checks.outputs import is_constant_across_samples
from lightning_sanity.forward import FORWARD_FN_HINT, CannotCall, model_calls

log = logging.getLogger(__name__)

#: most output values a snapshot follows (16 MB of float32): a larger output keeps fewer samples of the fixed batch.
_MAX_OUTPUT_VALUES = 1 << 22
_OUTPUT_KEYS = ("logits", "output", "outputs", "pred", "preds", "prediction", "predictions", "y_hat")


class Unusable(Exception):
    """The fixed batch cannot be evaluated or read; the message is the reason shown in the summary."""


def call_model(pl_module: torch.nn.Module, batch: Any, x: Any,
               forward_fn: Optional[Callable[[Any, Any], Any]]) -> torch.Tensor:
        """The output tensor of the model on the fixed batch, called the way every fixed-batch check calls it
    (:mod:`lightning_sanity.forward`: decided by ``forward``'s signature)."""
        try:
            calls = model_calls(pl_module, x, batch, forward_fn)
        except CannotCall as why:
            raise Unusable(str(why)) from None
        result, first_error = None, None
        for call in calls:
            try:
                result = call()
                break
            except Exception as err:
                first_error = first_error or err
        else:
            raise Unusable(f"calling `{calls[0].how}` on the fixed batch failed ({type(first_error).__name__}: "
                            f"{first_error}); {FORWARD_FN_HINT}") from first_error
        out = output_tensor(result)
        if out is None:
            raise Unusable(f"the model returned {type(result).__name__}, with no tensor to follow")
        return out


#: dropout ops (``torch.nn.functional`` and ``torch``) and the default of their training flag.
_DROPOUT_OPS = {
    "dropout": True, "dropout1d": True, "dropout2d": True, "dropout3d": True, "feature_dropout": True,
    "alpha_dropout": False, "feature_alpha_dropout": False,
}


class DropoutWatch(torch.overrides.TorchFunctionMode):
    """Observes (never changes) the torch functions called, noting a dropout op called with training on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "").rstrip("_")
        if name in _DROPOUT_OPS and not self.seen:
            if "training" in kwargs or "train" in kwargs:
                training = kwargs.get("training", kwargs.get("train"))
            else:
                training = args[2] if len(args) > 2 else _DROPOUT_OPS[name]
            p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
            self.seen = bool(training) and not (isinstance(p, (int, float)) and p == 0)
        return func(*args, **kwargs)


def output_tensor(result: Any) -> Optional[torch.Tensor]:
    """The tensor to follow in a forward's result: itself, ``.logits``, a known dict key, or the first tensor."""
    if isinstance(result, torch.Tensor):
        return result
    logits = getattr(result, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(result, Mapping):
        for key in _OUTPUT_KEYS:
            if isinstance(result.get(key), torch.Tensor):
                return result[key]
    if isinstance(result, (Mapping, Sequence)) and not isinstance(result, str):
        return first_tensor(result)
    return None


def align_to_target(out: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
    """Undo a flattened (B*T, C) output against (B, T) targets, as language models often return."""
    if (y is not None and out.dim() == 2 and y.dim() == 2 and out.shape[0] != y.shape[0]
            and out.shape[0] == y.numel()):
        return out.reshape(y.shape[0], y.shape[1], out.shape[1])
    return out


def trace_modules(pl_module: torch.nn.Module, call: Callable[[], Any], samples: Optional[int]) -> list[tuple]:
    """Run ``call`` with hooks on every module; per module call, in the order the calls finished:
    ``(name, input summary, output summary)``, each summary ``{"print": fingerprint, "constant": bool}`` or None."""
    done: list[tuple] = []

    def summary(value: Any) -> Optional[dict[str, Any]]:
        t = value if isinstance(value, torch.Tensor) else first_tensor(value)
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            return None
        d = t.detach().double()
        constant = samples is not None and t.dim() > 0 and t.shape[0] == samples and is_constant_across_samples(t)
        return {"print": torch.stack([d.sum(), (d * d).sum(), d.abs().sum()]), "constant": constant}

    with module_calls(pl_module, lambda name, args: summary(args),
                      lambda name, inp, output: done.append((name, inp, summary(output)))):
        call()
    return done


def samples_to_keep(out: torch.Tensor, samples: Optional[int]) -> Optional[int]:
    """How many samples to keep when the output is too large to follow whole, or None to keep them all.

    >>> samples_to_keep(torch.zeros(64, 32, 32000), 64), samples_to_keep(torch.zeros(64, 10), 64)
    (4, None)
    """
    if samples is None or samples < 2 or out.dim() == 0 or out.shape[0] != samples or out.numel() <= _MAX_OUTPUT_VALUES:
        return None
    return max(2, samples * _MAX_OUTPUT_VALUES // out.numel())


@dataclasses.dataclass
class FixedBatch:
    """The batch followed through training (an own CPU copy), where it came from (``"user"``, ``"validation"``,
    ``"training"``), and why following it stopped, if it did."""

    batch: Any = None
    source: str = ""
    stopped: Optional[str] = None

    def keep(self, batch: Any, source: str, most: int) -> None:
        """Follow the first ``most`` samples of ``batch`` from now on."""
        size = batch_size(batch)
        if size is None:
            raise Unusable("the batch holds no tensor with a batch dimension")
        if size > most:
            batch = slice_batch(batch, slice(0, most))
        # Own CPU copy: no device memory held, and nothing the user does to the batch later reaches it.
        self.batch = apply_to_collection(batch, torch.Tensor, lambda t: t.detach().to("cpu", copy=True))
        self.source = source

    def stop(self, reason: str) -> None:
        # Only prediction-jitter is this callback's alone: constant-output and train-mode are shared with other
        # callbacks, whose results a skip here must not hide.
        if self.stopped is None:
            self.stopped = reason
            log.debug("lightning_sanity: prediction dynamics stopped: %s", reason)
