"""How the fixed-batch checks call the model: one rule for all of them.

The checks that run the model on a batch of their own (``constant-output``, ``batch-mixing``,
``prediction-jitter`` and the leakage checks) call it the same way: the ways below that ``forward``'s signature
accepts, in this order, the first that runs being used:

1. ``forward_fn(pl_module, x)`` when the user gave one;
2. ``pl_module(x)``, with ``x`` the batch's input, when ``forward`` accepts one argument;
3. ``pl_module(**x)`` when the input is a dict whose keys ``forward`` accepts (HuggingFace style), or, for a
   dict batch, ``pl_module(**inputs)`` with every key but the targets (``forward(self, **batch)`` around a
   HuggingFace model whose loss is computed when ``labels`` are passed);
4. ``pl_module(*batch)`` when ``forward`` takes the batch's parts, the way a ``training_step`` calls
   ``self(inputs, target)`` (Lightning's demo Transformer);
5. ``pl_module(*batch[:-k])`` when ``forward`` takes every part of a batch of three or more but the last ``k``,
   the targets, the fewest dropped first: ``x_cat, x_num, y = batch`` then ``self(x_cat, x_num)`` (a tabular model
   with categorical and numeric inputs), ``users, items, ctx, clicked, watch = batch`` then
   ``self(users, items, ctx)`` (a multi-task model with one target per task). Only the signature decides ``k``, so
   a ``forward`` with optional trailing arguments gets the longest prefix it binds;
6. ``pl_module(batch)``, the whole batch, when ``forward`` takes the batch the way ``training_step`` gets it
   (``def forward(self, batch): return self.model(**batch)``, HuggingFace-style wrappers): its signature binds
   ``pl_module(x)`` as well, so this form is reached when calling with the input alone raised. A check that
   perturbs or slices the input does so inside the batch structure;
7. the same forms with a leading axis of one removed from every tensor (``squeeze(0)``), when the batch's input
   holds a single sample of two or more axes: a ``DataLoader(batch_size=1)`` over a dataset whose items are whole
   batches (pre-batched streams, truncated BPTT) adds that axis, and ``training_step`` removes it.

A LightningModule without ``forward`` whose training step calls one wrapped model with a dict batch
(``self.model(**batch)``, the HuggingFace way) is called through that model, by the same rules with its keys first,
when the model holds every trainable parameter and has no time-first layers (``pl_module.model(**inputs)``).

Where none binds, the check is skipped with a reason that names the signature and ``forward_fn=``. The leakage
checks, which look after the first training step, need no rule: they replay the very call ``training_step`` made
(observed on that step), or ``forward_fn`` when given.

Example::

    >>> import torch
    >>> from torch import nn
    >>> class Seq2Seq(nn.Module):
    ...     def forward(self, inputs, target):
    ...         return inputs + target
    >>> calls = model_calls(Seq2Seq(), torch.zeros(2), (torch.zeros(2), torch.ones(2)))
    >>> [call.how for call in calls], calls[0]().tolist()
    (['pl_module(*batch)'], [1.0, 1.0])
    >>> batch = (torch.zeros(2), torch.ones(2), torch.tensor([0, 1]))  # (x_cat, x_num, y)
    >>> [call.how for call in model_calls(Seq2Seq(), batch[0], batch)], calls[0](batch[:-1], {}).tolist()
    (['pl_module(*batch[:-1])'], [1.0, 1.0])
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional

import torch
from torch import nn

from lightning_sanity.batch import map_tensors, non_target_keys, tensors_of

FORWARD_FN_HINT = "pass `forward_fn=lambda module, x: ...` to say how to run the model on the batch's input"


class ModelCall(NamedTuple):
    """One way to call the model: ``fn(args, kwargs)``, with ``args``/``kwargs`` taken from the batch (a check may
    swap tensors in them, e.g. for leaf copies or perturbed inputs) and ``how`` for reasons and findings."""

    fn: Callable[[tuple, dict], Any]
    how: str
    args: tuple
    kwargs: dict

    def __call__(self, args: Optional[tuple] = None, kwargs: Optional[dict] = None) -> Any:
        return self.fn(self.args if args is None else args, self.kwargs if kwargs is None else kwargs)


class CannotCall(Exception):
    """No way to call the model on this batch; the message is the reason shown in the summary."""


def model_calls(module: nn.Module, x: Any, batch: Any, forward_fn: Optional[Callable[[Any, Any], Any]] = None,
                ) -> list[ModelCall]:
    """The ways to call ``module`` on ``batch`` (input ``x``) that its ``forward`` signature accepts, in order.

    Raises:
        CannotCall: the module has no ``forward`` of its own, or none of the ways binds to its signature.
    """
    if forward_fn is not None:
        return [ModelCall((lambda a, k: forward_fn(module, *a)), "forward_fn(pl_module, x)", (x,), {})]
    prefix = "pl_module"
    if not _defines_forward(module):
        found = _sole_model(module, batch)
        if found is None:
            raise CannotCall(f"{type(module).__name__} defines no `forward`; {FORWARD_FN_HINT}")
        name, module = found
        prefix = f"pl_module.{name}"
    candidates = _candidates(x, batch, "", prefix)
    if prefix != "pl_module":  # the wrapped model is called with the batch's keys first, as `self.model(**batch)`
        candidates.sort(key=lambda c: not c[0].startswith(f"{prefix}(**"))
    if _one_stacked_sample(x):
        squeezed_x, squeezed = map_tensors((x, batch), _squeeze_leading)
        candidates += _candidates(squeezed_x, squeezed, ".squeeze(0)", prefix)
    try:
        signature: Optional[inspect.Signature] = inspect.signature(module.forward)
    except (TypeError, ValueError):
        signature = None
    fitting: list[ModelCall] = []
    for how, args, kwargs in candidates:
        if signature is not None:
            try:
                signature.bind(*args, **kwargs)
            except TypeError:
                continue
        fitting.append(ModelCall((lambda a, k: module(*a, **k)), how, args, kwargs))
    if not fitting:
        raise CannotCall(f"`{type(module).__name__}.forward{signature}` accepts neither the batch's input alone, "
                         f"nor its keys, nor the batch's parts (with or without trailing ones); {FORWARD_FN_HINT}")
    return fitting


def _defines_forward(module: nn.Module) -> bool:
    forward = getattr(type(module), "forward", None)
    return not (forward is None or forward is nn.Module.forward or _is_lightning_default(forward))


#: layers that take time first unless told otherwise: a model built of them expects the transposed batch that a
#: ``training_step`` makes, which the batch's own layout does not show.
_SEQUENCE_FIRST = (nn.RNNBase, nn.MultiheadAttention)


def _sole_model(module: nn.Module, batch: Any) -> Optional[tuple[str, nn.Module]]:
    """``(name, child)`` for a module without ``forward`` whose training step calls one wrapped model with a dict
    batch (``self.model(**batch)``, the HuggingFace way): the one child that holds every trainable parameter and
    defines ``forward``, when the batch is a dict; None otherwise.

    Only dict batches: a tuple batch is often reshaped, scaled or transposed in ``training_step`` before the
    model sees it, which the probes could not know. Nor a model of time-first layers (``batch_first=False``).
    """
    if not isinstance(batch, Mapping):
        return None
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    holders = [(name, child) for name, child in module.named_children()
               if any(id(p) in trainable for p in child.parameters())]
    if len(holders) != 1:
        return None
    name, child = holders[0]
    if not _defines_forward(child) or {id(p) for p in child.parameters() if p.requires_grad} != trainable:
        return None
    if any(isinstance(m, _SEQUENCE_FIRST) and not getattr(m, "batch_first", False) for m in child.modules()):
        return None
    return name, child


def _candidates(x: Any, batch: Any, suffix: str, callee: str = "pl_module") -> list[tuple[str, tuple, dict]]:
    """The ways to call the model in the order they are tried (``suffix`` names a transform of the tensors,
    ``callee`` the module called, for the reasons and findings)."""
    candidates: list[tuple[str, tuple, dict]] = [(f"{callee}(x{suffix})", (x,), {})]
    if isinstance(x, Mapping):
        candidates.append((f"{callee}(**x{suffix})", (), dict(x)))
    elif isinstance(batch, Mapping):
        candidates.append((f"{callee}(**inputs{suffix})", (), non_target_keys(batch)))
    if isinstance(batch, (list, tuple)) and not (len(batch) == 1 and batch[0] is x):
        candidates.append((f"{callee}(*batch{suffix})", tuple(batch), {}))
    if isinstance(batch, (list, tuple)) and len(batch) >= 3 and batch[0] is x:
        # Targets come last (a multi-task batch ends with one per task): drop trailing parts, fewest first, so the
        # signature's arity picks the longest prefix it takes. A prefix of one part is ``x`` alone, tried above.
        for cut in range(1, len(batch) - 1):
            candidates.append((f"{callee}(*batch[:-{cut}]{suffix})", tuple(batch[:-cut]), {}))
    if batch is not x and batch is not None:
        candidates.append((f"{callee}(batch{suffix})", (batch,), {}))
    return candidates


def _one_stacked_sample(x: Any) -> bool:
    """Whether every tensor of the input has a leading axis of one before at least one more axis."""
    tensors = tensors_of(x)
    return bool(tensors) and all(t.dim() >= 2 and t.shape[0] == 1 for t in tensors)


def _squeeze_leading(t: torch.Tensor) -> torch.Tensor:
    return t.squeeze(0) if t.dim() >= 2 and t.shape[0] == 1 else t


def _is_lightning_default(forward: Any) -> bool:
    import lightning.pytorch as pl

    return forward is pl.LightningModule.forward
