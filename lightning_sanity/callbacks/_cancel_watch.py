"""Which layers with an exactly zero gradient compute on a branch whose value cancels to exactly zero.

PoolFormer's token mixer is ``pool(x) - x``; on a 1x1 feature map (an input smaller than the model was designed
for) the stride-1 pool is the identity, the mixer outputs exactly zero for every sample, the norm before it gets an
exactly zero gradient (d(pool(x) - x)/dx = 0) and the layer scale after it multiplies zero. That is a branch that
computes nothing at this input size, not a broken graph.

:class:`CancelWatch` rides on the gradient probe's one watched batch (:mod:`.gradient_probe`): it follows the
outputs of the layers whose first-step gradient was exactly zero through the calls made from them. A sum or
difference (``-``, ``+``, ``sub``, ``add``) of tensors that are each non-zero somewhere, whose result is exactly zero
everywhere, is a *cancellation*: the layers whose outputs fed it are ``cancelled``. Such a zero stays one through
products, quotients, dropout and reshapes, and a zero-gradient layer that receives it as an input, or whose
parameter is combined with it, is ``cancelled`` too. A zero from a multiplication by zero (a loss weighted by 0, a
mask that is always shut) or from a zero-derivative op (round, a comparison) is never a cancellation: those stay
warnings.

The facts are kept as device booleans (no host read during the batch) and read once, in one transfer, when the
verdict asks for them at the end of fit.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch.utils._pytree import tree_leaves

from lightning_sanity.callbacks._step_watch import SHAPE_OPS, Tags, function_name

#: Sums and differences: a result of exactly zero from non-zero terms is a cancellation.
CANCELLING = frozenset({"sub", "__sub__", "__rsub__", "rsub", "sub_", "__isub__", "subtract",
                        "add", "__add__", "__radd__", "add_", "__iadd__"})
#: Calls whose result is zero wherever a tensor argument is zero (checked by value as well).
ZERO_KEEPING = SHAPE_OPS | {"mul", "__mul__", "__rmul__", "mul_", "__imul__", "multiply", "div", "__truediv__",
                            "div_", "__itruediv__", "divide", "neg", "__neg__", "dropout", "dropout1d", "dropout2d",
                            "dropout3d", "alpha_dropout", "feature_alpha_dropout"}
#: Bound on the facts kept for one batch (a model whose every layer was zero at the first step, e.g. a
#: zero-initialised head, follows everything); beyond it no more are noted.
MAX_FACTS = 4096


def _tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


class CancelWatch:
    """Follows the zero-gradient ``targets`` for one batch (see the module docstring)."""

    def __init__(self, targets: set[str], params: dict[int, str]) -> None:
        self.targets = frozenset(targets)
        self.params = params  # id(parameter) -> its layer, for the targets' parameters
        self._names = Tags()  # tensor -> the target layers it was computed from
        self._zero = Tags()  # tensor -> device bool: "this tensor is a cancelled zero"
        self._owner = Tags()  # a view of a target's parameter -> its layer
        self.facts: list[tuple[frozenset[str], torch.Tensor]] = []
        self._cancelled: Optional[set[str]] = None
        self.broken = False  # an internal error: no verdict (the warnings stand), the gradient probe unharmed

    def layer_ran(self, name: str, args: tuple, output: Any) -> None:
        """A target's forward hook: its input may be a cancelled zero; its outputs are followed."""
        self._guarded(self._layer_ran, name, args, output)

    def after_call(self, func: Any, args: tuple, kwargs: dict, result: Any) -> None:
        self._guarded(self._after_call, func, args, kwargs, result)

    def _guarded(self, method: Any, *args: Any) -> None:
        if self.broken:
            return
        try:
            method(*args)
        except Exception:  # an unusual tensor (sparse, nested, fake): no verdict, never into the user's step
            self.broken = True
            self.facts = []

    def _layer_ran(self, name: str, args: tuple, output: Any) -> None:
        if name not in self.targets or not torch.is_grad_enabled():
            return
        for tensor in _tensors(args):
            flag = self._zero.get(tensor)
            if flag is not None:
                self._note(frozenset((name,)), flag)
        for tensor in _tensors(output):
            if tensor.requires_grad:
                self._names.set(tensor, (self._names.get(tensor) or frozenset()) | {name})

    def _after_call(self, func: Any, args: tuple, kwargs: dict, result: Any) -> None:
        if not torch.is_grad_enabled():
            return
        operands = [t for value in (*args, *kwargs.values()) for t in _tensors(value)]
        outs = [t for t in _tensors(result) if t.requires_grad]
        if not operands or not outs:
            return
        name = function_name(func)
        names = frozenset().union(*(self._names.get(t) or () for t in operands))
        zeros = [f for f in map(self._zero.get, operands) if f is not None]
        owners = {self.params.get(id(t)) or self._owner.get(t) for t in operands} - {None}
        if owners and name in SHAPE_OPS and len(operands) == 1:
            self._owner.set(outs[0], next(iter(owners)))  # gamma.view(C, 1, 1): still the layer's parameter
        if zeros and owners and name not in CANCELLING:  # the layer's parameter applied to a cancelled zero
            self._note(frozenset(owners), zeros[0])
        if names:
            for out in outs:
                self._names.set(out, (self._names.get(out) or frozenset()) | names)
        if name in CANCELLING and names and len(operands) >= 2:
            out = outs[0]
            flag = out.detach().eq(0).all()
            for term in operands:
                flag = flag & term.detach().ne(0).any().to(flag.device)
            self._note(names, flag)
            self._zero.set(out, flag)
        elif zeros and name in ZERO_KEEPING:
            out = outs[0]
            self._zero.set(out, zeros[0] & out.detach().eq(0).all().to(zeros[0].device))

    def _note(self, names: frozenset[str], flag: torch.Tensor) -> None:
        if len(self.facts) < MAX_FACTS:
            self.facts.append((names, flag))

    def cancelled(self) -> set[str]:
        """The target layers on a branch that cancels to zero: the kept facts, read in one transfer (once)."""
        if self._cancelled is None:
            found: set[str] = set()
            try:
                if self.facts and not self.broken:
                    device = self.facts[0][1].device
                    values = torch.stack([f.to(device) for _, f in self.facts]).tolist()
                    found = set().union(*(names for (names, _), value in zip(self.facts, values) if value))
            except Exception:  # no verdict: the warnings stand
                found = set()
            self._cancelled, self.facts = found, []
        return self._cancelled

    def forget(self) -> None:
        """The batch is over: drop the references to its tensors (the facts stay)."""
        self._names, self._zero, self._owner = Tags(), Tags(), Tags()
