"""Per-parameter "was its gradient ever non-zero" for ``dead-gradient``, riding on the norm monitor's rows.

The norm meter already writes one gradient norm per parameter and step into a device buffer before folding them
into per-layer sums (``callbacks/norm_meter.py``). :class:`ParamZeroWatch` keeps two facts per parameter from
that buffer: how many measured steps it had a gradient (host counters on the meter's cached gradient patterns:
one integer increment per step) and whether any of its norms was non-zero (one ``any`` over the buffer at each
fold, on the device; read once at the end of fit). The judgement is
:func:`lightning_sanity.checks.dead_params.dead_parameters`.

Example::

    >>> import torch
    >>> watch = ParamZeroWatch(2, torch.device("cpu"))
    >>> watch.fold(torch.tensor([[0.0, 1.0], [0.0, 2.0]]))
    >>> watch.count(None, 2)
    >>> watch.facts([])
    ([2, 2], [False, True])
"""

from __future__ import annotations

from typing import Any, Optional

import torch


class ParamZeroWatch:
    """Steps with a gradient, and "ever non-zero", for each parameter of one optimizer view."""

    def __init__(self, num_params: int, device: torch.device) -> None:
        self.present_steps = torch.zeros(num_params, dtype=torch.long)
        self.alive = torch.zeros(num_params, dtype=torch.bool, device=device)

    def fold(self, grad_norms: torch.Tensor) -> None:
        """Before the buffered norms are cleared: a norm that is not exactly zero (NaN and inf included, as for
        the layers: a non-finite gradient is not a dead one) makes its parameter alive. No host sync."""
        self.alive |= (grad_norms != 0).any(dim=0)

    def count(self, present: Optional[list[int]], uses: int) -> None:
        """``uses`` steps in which the parameters at ``present`` (None: all) had a gradient."""
        _add(self.present_steps, present, uses)

    def facts(self, patterns: Any) -> tuple[list[int], list[bool]]:
        """``(steps with a gradient, ever non-zero)`` per parameter, the cached patterns' uses included (one read
        of the device flags: end of fit only)."""
        steps = self.present_steps.clone()
        for pattern in patterns:
            _add(steps, pattern.present, getattr(pattern, "uses", 0))
        return steps.tolist(), self.alive.cpu().tolist()

    def bank(self, patterns: Any) -> None:
        """Move the uses counted on ``patterns`` into the counters (before the pattern cache is cleared)."""
        for pattern in patterns:
            self.count(pattern.present, getattr(pattern, "uses", 0))
            pattern.uses = 0

    def carry(self, old: "ParamZeroWatch", old_params: list[torch.Tensor], new_params: list[torch.Tensor],
              old_patterns: Any) -> None:
        """A rebuilt view (its optimizer gained parameter groups): keep what the old one knew, by parameter."""
        old.bank(old_patterns)
        where = {id(p): i for i, p in enumerate(old_params)}
        pairs = [(where[id(p)], j) for j, p in enumerate(new_params) if id(p) in where]
        if not pairs:
            return
        src = [i for i, _ in pairs]
        dst = [j for _, j in pairs]
        self.present_steps[dst] = old.present_steps[src]
        kept = old.alive[torch.tensor(src, device=old.alive.device)]
        self.alive[torch.tensor(dst, device=self.alive.device)] = kept.to(self.alive.device)


def _add(steps: torch.Tensor, present: Optional[list[int]], uses: int) -> None:
    """Add ``uses`` to the step counts of the parameters at ``present`` (None: all of them)."""
    if not uses:
        return
    if present is None:
        steps += uses
    elif present:
        steps[present] += uses


def report_dead_parameters(monitor: Any, trainer: Any, dead: dict[str, list[int]], meta: Any,
                           layer_found: bool = False) -> None:
    """dead-gradient, kind ``zero_parameter``: the tensors whose gradient was exactly zero on every measured step,
    in layers the layer rule did not name already (``dead``: its result). Info only when the layer rule found a
    layer dead (``layer_found``): a layer cut off or rounded to zero upstream zeroes the input of the next weight,
    the same cause. Not under sharded strategies (a shard of a tensor may be all zero where the whole is not)."""
    from lightning_sanity.checks.dead_params import (ADVICE, dead_parameter_message, dead_parameters,
                                                     repeated_elsewhere, shift_redundant_biases)
    from lightning_sanity.checks.naming import common_module
    from lightning_sanity.findings import Severity

    if monitor._flags.sharded:
        return
    named = {id(p): n for n, p in trainer.lightning_module.named_parameters()}
    skip = {i for kind in ("missing", "zero", "died") for i in dead.get(kind, [])}
    found: dict[int, tuple[str, int, int]] = {}
    live: dict[int, list[str]] = {}
    for view in monitor._meter.views.values():
        steps, alive = view.zero_watch.facts(view.patterns.values())
        dead_here = set(dead_parameters(steps, alive))
        for i, p in enumerate(view.params):
            if i in dead_here and p.requires_grad and view.layer[i] not in skip and id(p) in named:
                found.setdefault(id(p), (named[id(p)], steps[i], view.layer[i]))
            elif alive[i] and id(p) in named:
                live.setdefault(view.layer[i], []).append(named[id(p)])
    found = {k: v for k, v in found.items() if not any(v[0] in names for names in live.values())}
    # A Linear/Conv bias dead while its weight learns: the loss ignores a shift of the layer's output, by design.
    alive_names = [n for names in live.values() for n in names]
    shifted = set(shift_redundant_biases([v[0] for v in found.values()], alive_names, trainer.lightning_module))
    redundant = {k: v for k, v in found.items() if v[0] in shifted}
    found = {k: v for k, v in found.items() if v[0] not in shifted}
    if redundant:
        _report_redundant(monitor, trainer, redundant, meta)
    if not found:
        return
    names = [v[0] for v in found.values()]
    layers = sorted({v[2] for v in found.values()})
    others = [n for layer in layers for n in live.get(layer, [])]
    message = dead_parameter_message(names, [v[1] for v in found.values()], others)
    layer_names = [monitor.layers.names[i] for i in layers]
    if layer_found:
        message += (" A layer named in another dead-gradient finding may be the cause (its output is this tensor's "
                    "input).")
    stacked = repeated_elsewhere(names, alive_names)
    if stacked:
        message += (" The same tensors of the other blocks of its stack learn: the model reads this block's output "
                    "only where these tensors play no part (a classifier reading one token), by design.")
    monitor._report(trainer, "dead-gradient", Severity.INFO if layer_found or stacked else Severity.WARNING, message,
                    ADVICE,
                    where=names[0] if len(names) == 1 else common_module(layer_names), meta=meta,
                    data={"parameters": names, "layers": layer_names, "kind": "zero_parameter",
                          "steps": max(v[1] for v in found.values())})


def _report_redundant(monitor: Any, trainer: Any, found: dict[int, tuple[str, int, int]], meta: Any) -> None:
    """dead-gradient info, kind ``shift_invariant``: Linear/Conv biases whose weights learn while they never do."""
    from lightning_sanity.checks.dead_params import SHIFT_ADVICE
    from lightning_sanity.checks.naming import common_module, short_list
    from lightning_sanity.findings import Severity

    names = [v[0] for v in found.values()]
    one = len(names) == 1
    listed = short_list([f"`{n}`" for n in names], limit=4)
    subject = f"Parameter `{names[0]}` got" if one else f"{len(names)} biases ({listed}) got"
    steps = max(v[1] for v in found.values())
    message = (f"{subject} an exactly zero gradient on every one of up to {steps} measured steps while "
               f"{'its layer' if one else 'their layers'}' weight learned: the loss does not change when the layer's "
               "output is shifted by a constant per channel (outputs compared with each other, or normalised right "
               f"after), so {'the bias is' if one else 'the biases are'} redundant by design.")
    layer_names = [monitor.layers.names[v[2]] for v in found.values()]
    monitor._report(trainer, "dead-gradient", Severity.INFO, message, SHIFT_ADVICE,
                    where=names[0] if one else common_module(layer_names), meta=meta,
                    data={"parameters": names, "layers": layer_names, "kind": "shift_invariant", "steps": steps})
