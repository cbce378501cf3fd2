"""Which layers without a gradient ran in the forward pass, with autograd recording, and whether their output was used.

The norm monitor's ``dead-gradient`` tells "never called in training_step" from "cut off from the loss" from
"runs under torch.no_grad()" with one forward hook per such layer, armed for one batch after the first step.

For a layer that ran with autograd recording, the same batch tells a cut from dead code: a
:class:`~lightning_sanity.callbacks._step_watch.StepWatch` follows the layer's outputs (by identity) through the
differentiable calls made from them. An output, or a tensor computed from it, that reaches a call whose result no
longer carries autograd history (``.detach()``, ``.data``, ``.item()``, ``.tolist()``, ``argmax``, a comparison, any
call under ``torch.no_grad()``) was *consumed through a cut*: the bug the check exists for. Outputs that nothing
ever reads (N-BEATS's last backcast, computed and dropped) are dead code: wasted compute, not a lost gradient.

For a layer that ran only under ``torch.no_grad()``, the same batch follows its outputs through every call, with or
without autograd: reaching a call made with autograd recording that also takes a trainable parameter of the model
(the head's ``linear``) means the layer *feeds* layers that learn, as a feature extractor does (:attr:`fed`);
a teacher's or an EMA copy's outputs reach the loss as targets and feed no parameter.

Layers whose first-step gradient was present but exactly zero are watched on the same batch by a
:class:`~lightning_sanity.callbacks._cancel_watch.CancelWatch`: is their branch's value exactly zero for every
sample (``pool(x) - x`` on a 1x1 map), rather than cut?

Layers that did not run in the probed batch keep a forward hook to the end of training that notes whether they run
later in train mode (:attr:`late`): an item tower that ``on_train_epoch_start`` encodes under ``torch.no_grad()``
into a cache that every step reads is never called in training_step, and never learns either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

import torch
from torch.utils._pytree import tree_leaves

from lightning_sanity.callbacks._cancel_watch import CancelWatch
from lightning_sanity.callbacks._compiled import hookable_modules
from lightning_sanity.callbacks._step_watch import StepWatch, Tags, function_name
from lightning_sanity.callbacks.norm_meter import StepRow, any_layers
from lightning_sanity.checks import layers as LM
from lightning_sanity.cost import timed

#: Calls that hand a tensor's values to Python: a cut whatever they return.
VALUE_READS = frozenset({"item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "__array__",
                         "__complex__"})


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors of a call's argument or result, one container level deep (``torch.cat([a, b])``)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, torch.Tensor)]
    return []


class GradientProbe:
    """Layers that are trainable but got no gradient in the first step, watched for one batch: did they run,
    and with autograd recording? (Tells "never called" from "cut off from the loss" from "under no_grad".)
    Of those that ran with autograd recording, :attr:`cut` names those whose output was consumed through a cut;
    of those that ran only under no_grad, :attr:`fed` maps those whose output reached a trainable parameter's call
    made with autograd recording to the layers of those parameters.
    Layers whose first-step gradient was exactly zero are followed by :attr:`cancel` on the same batch."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.handles: list[Any] = []
        self.ran: dict[str, bool] = {}
        #: layers that did not run in the probed batch but ran later in train mode, outside training_step's
        #: reach (an item tower cached in ``on_train_epoch_start``): name -> whether autograd was recording.
        self.late: dict[str, bool] = {}
        self._late_handles: list[Any] = []
        self._modules: Optional[dict[str, torch.nn.Module]] = None
        self.cut: set[str] = set()
        self.fed: dict[str, set[str]] = {}
        self._frozen = Tags()  # tensor -> the no_grad layers it was computed from
        self._param_layer: dict[int, str] = {}  # id(parameter) -> its layer
        self.armed_once = False
        self._watch: StepWatch | None = None
        self._followed = Tags()  # tensor -> the layers it was computed from
        self.followed_all = False  # the watch saw the whole probed batch without an error
        self.cancel: CancelWatch | None = None

    def plan(self, layers: LM.LayerMap, row: StepRow, zero: torch.Tensor | None = None) -> None:
        """After the first step: layers that are trainable but got no gradient are watched for one batch, and so
        are those whose gradient was exactly zero (``zero``: bool per layer, on the host)."""
        L = len(layers)
        missing = any_layers(row.patterns, "trainable", L) & ~any_layers(row.patterns, "has_grad", L)
        self.targets = [layers.names[i] for i in missing.nonzero().flatten().tolist()]
        self._param_layer = {p: layers.names[i] for p, i in layers.param_layer.items()} if self.targets else {}
        if zero is not None and bool(zero.any()):
            chosen = set(zero.nonzero().flatten().tolist())
            names = {layers.names[i] for i in chosen}
            self.cancel = CancelWatch(names, {p: layers.names[i] for p, i in layers.param_layer.items() if i in chosen})
            self.targets += sorted(names)

    def cancelled(self, name: str) -> bool:
        """True when ``name`` (exactly zero gradient) computes on a branch that cancels to zero for every sample."""
        return self.followed_all and self.cancel is not None and name in self.cancel.cancelled()

    def arm(self, pl_module: torch.nn.Module) -> None:
        self._modules = modules = dict(hookable_modules(pl_module))
        for name, module in self._target_modules(modules):

            def hook(_module, args, output, name=name) -> None:
                # Notes that the module ran, whether autograd was recording, and follows its outputs: no observer
                # effect (identities and flags only).
                if self.cancel is not None and name in self.cancel.targets:
                    self.cancel.layer_ran(name, args, output)
                    return
                recording = torch.is_grad_enabled()
                self.ran[name] = self.ran.get(name, False) or recording
                leaves = [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]
                if recording:
                    self._follow(leaves, frozenset((name,)))
                else:  # the output's upstream no_grad layers came with the calls inside the layer
                    for tensor in leaves:
                        self._frozen.set(tensor, (self._frozen.get(tensor) or frozenset()) | {name})

            self.handles.append(module.register_forward_hook(timed(hook)))
        self.armed_once = True
        if self.handles:
            try:
                self._watch = StepWatch(after=self._after_call).start()
            except Exception:  # without the watch every layer that ran stays "cut off" (the old verdict)
                self._watch = None

    def _target_modules(self, modules: dict[str, torch.nn.Module]) -> Iterator[tuple[str, torch.nn.Module]]:
        for name in self.targets:
            module = modules.get("" if name == LM.ROOT else name)
            if module is not None:
                yield name, module

    def _watch_late(self, modules: dict[str, torch.nn.Module]) -> None:
        for name, module in self._target_modules(modules):
            if name in self.ran:
                continue

            def hook(module, args, output, name=name) -> None:
                # Train mode only: validation runs every module under no_grad and in eval mode.
                if module.training and not torch.is_inference_mode_enabled():
                    self.late[name] = self.late.get(name, False) or torch.is_grad_enabled()

            self._late_handles.append(module.register_forward_hook(hook))

    def unconsumed(self, name: str) -> bool:
        """True when ``name`` ran with autograd recording and nothing read its output through a cut."""
        return self.followed_all and bool(self.ran.get(name)) and name not in self.cut

    def _follow(self, tensors: list[torch.Tensor], names: frozenset[str]) -> None:
        if not tensors:
            self.cut |= names  # an output without tensors: nothing to follow, keep the warning
        for tensor in tensors:
            if not tensor.requires_grad:
                self.cut |= names  # cut inside the layer itself (an integer output, a detach in its forward)
                continue
            names = names | (self._followed.get(tensor) or frozenset())
            self._followed.set(tensor, names)

    def _names(self, tensor: torch.Tensor) -> frozenset[str]:
        return self._followed.get(tensor) or frozenset()

    def _after_call(self, func: Any, args: tuple, kwargs: dict, result: Any) -> None:
        if self.cancel is not None:
            self.cancel.after_call(func, args, kwargs, result)
        if self._frozen:
            self._after_frozen(args, kwargs, result)
        if not self._followed:
            return
        names: frozenset[str] = frozenset()
        for value in (*args, *kwargs.values()):
            for tensor in _tensors(value):
                names = names | self._names(tensor)
        if not names:
            return
        out = _tensors(result)
        if result is None and function_name(func) == "__setitem__" and args:
            out = _tensors(args[0])  # `buffer[i] = output`: the buffer now holds the output's values
        carried = [t for t in out if t.requires_grad]
        if carried and torch.is_grad_enabled():
            self._follow(carried, names)
        elif out or function_name(func) in VALUE_READS:
            self.cut |= names  # values read without autograd history; metadata reads (size, shape) return no tensor

    def _after_frozen(self, args: tuple, kwargs: dict, result: Any) -> None:
        """Carries the no_grad layers' names to the call's results; a call with autograd recording that also takes
        a trainable parameter of the model (more than one value: a learned temperature scales targets too) makes
        them feed that parameter's layer."""
        values = [t for value in (*args, *kwargs.values()) for t in _tensors(value)]
        names: frozenset[str] = frozenset()
        for tensor in values:
            names = names | (self._frozen.get(tensor) or frozenset())
        if not names:
            return
        if torch.is_grad_enabled():
            for tensor in values:
                layer = self._param_layer.get(id(tensor))
                if layer is not None and tensor.requires_grad and tensor.numel() > 1:
                    for name in names:
                        self.fed.setdefault(name, set()).add(layer)
        for tensor in _tensors(result):
            self._frozen.set(tensor, names | (self._frozen.get(tensor) or frozenset()))

    def disarm(self, keep_late: bool = False) -> None:
        """Removes the probe's hooks; ``keep_late``: layers that did not run in the probed batch keep a hook that
        notes whether they run later in train mode (it costs nothing while they do not run)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if keep_late and self._modules:
            self._watch_late(self._modules)  # once: the modules are let go below
        elif not keep_late:
            for handle in self._late_handles:
                handle.remove()
            self._late_handles = []
        self._modules = None
        watch, self._watch = self._watch, None
        if watch is not None:
            self.followed_all = watch.failed is None
            watch.stop()
        self._followed = Tags()
        self._frozen = Tags()
        if self.cancel is not None:
            self.cancel.forget()
