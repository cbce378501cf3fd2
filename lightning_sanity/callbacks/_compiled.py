"""Models with ``torch.compile``-d parts: which modules the suite may hook, and the eager modules its probes call.

A forward hook placed inside a compiled module after it was compiled never fires (dynamo does not guard on
hooks), and one present when it compiles is traced into the graph, so that taking it off compiles the graph
again, seconds on a CPU. The checks that hook the user's own steps therefore hook a compiled module's wrapper
(its call, as the user makes it) and nothing inside it (:func:`hookable_modules`). The suite's own extra forwards
call the original module instead (:func:`compiled_children`, in
:func:`~lightning_sanity.callbacks._extra_forward.eval_mode`): a compiled module called in eval mode, without
gradients or on a sub-batch compiles another graph that the user's steps never use.

Example::

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> [name for name, _ in hookable_modules(net)]
    ['', '0', '1']
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn


def _optimized_module() -> type:
    try:
        from torch._dynamo.eval_frame import OptimizedModule

        return OptimizedModule
    except Exception:  # no dynamo in this torch build: nothing is compiled
        return type("NeverCompiled", (), {})


def eager(module: nn.Module) -> nn.Module:
    """The original module of a compiled one (what a probe calls), else ``module`` itself."""
    original = getattr(module, "_orig_mod", None)
    return original if isinstance(module, _optimized_module()) and isinstance(original, nn.Module) else module


def compiled_children(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """``(parent, name, child)`` for each compiled submodule of ``model`` that wraps an original module."""
    return [(parent, name, child) for parent in model.modules() for name, child in parent._modules.items()
            if child is not None and eager(child) is not child]


def hookable_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``model.named_modules()`` without the modules inside a compiled module (its wrapper is kept)."""
    inside = {id(m) for _, _, child in compiled_children(model) for m in eager(child).modules()}
    for name, module in model.named_modules():
        if id(module) not in inside:
            yield name, module
