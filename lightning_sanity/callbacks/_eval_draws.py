"""What random draws an eval-mode forward makes, told apart: a random *mask* (which entries to hide) or a sample.

``train-mode``'s eval-determinism look (:mod:`~lightning_sanity.callbacks._fixed_batch_findings`) finds a model
whose eval output changes from call to call. Dropout forced on is a warning; other randomness was info, because a
VAE's reparameterisation (``randn_like``) or a diffusion model's noise samples in eval on purpose. Random *masking*
is another matter: SpecAugment, cutout, random erasing, token masking decide at random which entries of the input
(or of a feature map) to hide. It is a training-time augmentation; in eval it damages the inputs and makes
validation noisy. Its draws are discrete: ``randint`` / ``randperm`` (positions and widths), ``bernoulli``, or a
uniform draw thresholded (``torch.rand(...) < p`` is a Bernoulli draw) or rounded (timm's ``drop_path``:
``(keep_prob + torch.rand(...)).floor_()`` is a Bernoulli draw of mean ``keep_prob``, which drops whole residual
branches: stochastic depth). Gaussian draws (``randn``, ``normal_``) and
uniform draws used as values are samples and stay info.

The watch observes (never changes) the calls of one extra forward, run only once two evaluations disagreed, under
``isolate_rng`` in the caller.

Example::

    >>> import torch
    >>> with MaskDrawWatch() as watch:
    ...     keep = torch.rand(4, 3) > 0.2
    ...     z = torch.randn(4, 3)
    >>> sorted(watch.mask_draws), watch.seen
    (['rand thresholded'], False)
    >>> with MaskDrawWatch() as watch:
    ...     keep = (0.75 + torch.rand(4, 1)).floor_()
    >>> sorted(watch.mask_draws)
    ['rand rounded']
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.callbacks._fixed_batch import DropoutWatch

#: Draws that are discrete by nature: they pick positions, widths or a keep/drop decision.
DISCRETE_DRAWS = frozenset({"randint", "randint_like", "randperm", "bernoulli"})
#: Uniform draws: a sample when used as values, a Bernoulli (mask) draw once compared with a threshold.
UNIFORM_DRAWS = frozenset({"rand", "rand_like", "uniform"})
#: Rounding a uniform draw (shifted or scaled first) makes a Bernoulli draw too.
_ROUNDINGS = frozenset({"floor", "ceil", "round", "trunc"})
#: Arithmetic that carries a uniform draw into a new tensor (``keep_prob + rand``), dunder names without their
#: trailing underscores (as ``__torch_function__`` names are read here).
_CARRIES = frozenset({"add", "sub", "rsub", "mul", "div", "true_divide", "__add", "__radd", "__sub", "__rsub",
                      "__mul", "__rmul", "__truediv", "__rtruediv"})
_COMPARISONS = frozenset({"lt", "le", "gt", "ge", "__lt__", "__le__", "__gt__", "__ge__", "less", "greater",
                          "less_equal", "greater_equal"})


#: Loss functions whose ``target`` (second argument) tells a masking objective from a masking augmentation.
_LOSSES = frozenset({"cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                     "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div"})
#: At most this many tensors are followed from a mask draw (masks, masked ids and labels: a handful per forward).
_FOLLOWED = 256


def _discrete(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and not (t.is_floating_point() or t.is_complex())


class MaskDrawWatch(DropoutWatch):
    """A :class:`DropoutWatch` that also notes random mask draws (``mask_draws``: names of the draws seen), and
    whether a mask chose the targets of a loss computed in the forward (``objective``).

    A masked-language-model or ELECTRA forward draws which tokens to hide and predicts those very tokens: the mask
    is the objective, and a validation loss over random masks is a sample of it by design. SpecAugment or cutout
    left on in eval hides inputs of a prediction whose targets the draw never touches. Masks are followed through
    discrete tensors only (masks, masked ids, labels built with them, and what is made from those in one op), so
    the watch never follows the activations of a whole network.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask_draws: set[str] = set()
        self.objective = False
        self._uniform: list[torch.Tensor] = []  # held, so that their ids stay unique during the forward
        self._masked: dict[int, torch.Tensor] = {}  # tensors made from a mask draw, held for the same reason

    def _follow(self, result: Any) -> None:
        for t in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(t, torch.Tensor) and len(self._masked) < _FOLLOWED:
                self._masked[id(t)] = t

    def _from_mask(self, args: Any, kwargs: dict) -> bool:
        for a in (*args, *kwargs.values()):
            for t in a if isinstance(a, (tuple, list)) else (a,):
                if _discrete(t) and id(t) in self._masked:
                    return True
        return False

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = super().__torch_function__(func, types, args, kwargs)
        raw = getattr(func, "__name__", "")
        name = raw.rstrip("_") if raw not in _COMPARISONS else raw
        if self._masked:
            if name in _LOSSES:
                target = kwargs.get("target", args[1] if len(args) > 1 else None)
                self.objective = self.objective or (isinstance(target, torch.Tensor) and id(target) in self._masked)
            elif self._from_mask(args, kwargs):
                self._follow(result)
                if (raw.endswith("_") or raw == "__setitem__") and args and isinstance(args[0], torch.Tensor):
                    self._follow(args[0])  # written in place with the mask: ``labels[~mask] = -100``
        if name in DISCRETE_DRAWS:
            self.mask_draws.add(name)
            self._follow(result)
        elif name in UNIFORM_DRAWS:
            target = result if isinstance(result, torch.Tensor) else None
            if name == "uniform" and args and isinstance(args[0], torch.Tensor):
                target = args[0]  # Tensor.uniform_ fills its own tensor in place
            if target is not None and len(self._uniform) < 64:
                self._uniform.append(target)
        elif self._uniform and (name in _COMPARISONS or name in _ROUNDINGS or name in _CARRIES):
            drawn = {id(t) for t in self._uniform}
            if any(id(a) in drawn for a in args if isinstance(a, torch.Tensor)):
                if name in _COMPARISONS:
                    self.mask_draws.add("rand thresholded")
                    self._follow(result)
                elif name in _ROUNDINGS:
                    self.mask_draws.add("rand rounded")
                    self._follow(result)
                elif isinstance(result, torch.Tensor) and len(self._uniform) < 64:
                    self._uniform.append(result)  # still a uniform draw, shifted or scaled
        return result
