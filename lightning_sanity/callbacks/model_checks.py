r"""
Model checks
^^^^^^^^^^^^

Fit-start checks of the model itself: does every trainable parameter reach an optimizer
(``optimizer-coverage``), does the output change with the input (``constant-output``), and does each sample's
output depend on that sample alone (``batch-mixing``)?
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.seed import isolate_rng
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from typing_extensions import override

from lightning_sanity.batch import BatchFn, batch_size, input_of
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks import flow
from lightning_sanity.checks.episodes import batchnorm_advice, unconverged_batchnorm
from lightning_sanity.checks.modes import summarize_names
from lightning_sanity.findings import Severity
from lightning_sanity.forward import CannotCall, ModelCall, model_calls

log = logging.getLogger(__name__)

#: ``collector.facts`` key that is True while ModelChecks runs its extra forwards (hooks elsewhere may skip them).
EXTRA_FORWARD_FACT = "model_checks.extra_forward"

#: How many training batches to wait for one with at least two samples before giving up on the flow checks.
_MAX_ATTEMPTS = 3


class _Skip(Exception):
    """A flow check cannot run on this model or batch; the message is the reason shown in the summary."""


class ModelChecks(SanityCallback):
    r"""Check, once at the start of fit, that the optimizers cover the model and that information flows per sample.

    - ``optimizer-coverage`` (at ``on_train_start``): trainable parameters (``requires_grad``) held by no
      optimizer are a warning naming their modules; parameters held by an optimizer but not owned by the
      LightningModule are an error (the optimizer was built over another model instance). Frozen parameters may
      stay out of every optimizer. Works with several optimizers and with manual optimization.
    - ``constant-output`` (first training batch, before the first update): outputs of samples whose inputs differ
      (or of a perturbed copy of a sample, when the batch holds one input only) must differ. Identical outputs
      are an error naming the module where the information stops; a layer whose weights are all zero at start
      (a deliberate zero initialisation) only gives ``info``.
    - ``batch-mixing`` (same batch): the gradient of sample ``i``'s output with respect to every other sample's
      input must be zero. Integer token inputs are handled by taking the gradient at the ``nn.Embedding``
      outputs. A leak is a warning naming the module whose forward mixes the samples. Dependence within a sample
      (causal attention over time steps) is fine.

    The model is called as ``pl_module(x)`` with ``x`` the batch's input (see
    :func:`lightning_sanity.batch.split_batch`); when ``forward`` does not accept that, as ``pl_module(**x)``
    for a dict input or ``pl_module(*batch)`` for a tuple batch (so ``lightning.pytorch.demos``'
    ``LightningTransformer``, whose forward takes ``(inputs, target)``, is checked too). When no form fits, or
    the call raises, the two flow checks are marked skipped with the reason; training goes on.

    Zero observer effect: the extra forwards run in eval mode (BatchNorm uses its running statistics and leaves
    them alone, Dropout is off) with each module's own ``training`` flag restored afterwards, inside
    ``isolate_rng()``, and the gradients are taken with ``torch.autograd.grad`` on the inputs only, so no
    parameter's ``.grad`` is touched. Cost: one forward and ``flow_samples`` backward passes (twice that for a
    flattened ``(B*T, C)`` output) on the first batch, plus one more forward and backward only when a flow check
    fires, to locate the module. Nothing after that. No TensorBoard tags.

    Thresholds (``thresholds={"batch-mixing": {...}}`` or :meth:`set_thresholds`): ``leak_fraction``, the share of
    a sample's input gradient that may land on other samples (default ``1e-4``, round-off only: raise it to accept a
    deliberate small cross-sample dependence). ``optimizer-coverage`` and ``constant-output`` have none: they
    compare by identity and by exact equality up to float round-off.

    Args:
        get_input: function ``batch -> model input`` when the batch is not a tensor, an ``(x, y, ...)`` tuple or a
            dict with a common input key.
        flow_samples: how many sample indices of the batch ``batch-mixing`` tests (spread over the batch,
            first and last included); each costs one backward pass.
        forward_fn: function ``(pl_module, x) -> output`` that runs the model on input ``x``, for a model that
            needs more than ``pl_module(x)``; ``x`` is the input with its float tensors replaced by copies that
            require grad.

    Raises:
        ValueError: ``get_input`` or ``forward_fn`` is not callable, or ``flow_samples`` is not an int in 1..64.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.model_checks import ModelChecks
        >>> trainer = Trainer(callbacks=[ModelChecks(flow_samples=2)], logger=False)
    """

    checks = ("optimizer-coverage", "constant-output", "batch-mixing")
    threshold_specs = {
        "batch-mixing": {
            "leak_fraction": Threshold(
                flow.LEAK_TOLERANCE, "share of a sample's input gradient that may land on other samples before "
                "batch-mixing fires", maximum=1.0),
        },
    }

    def __init__(
        self,
        get_input: BatchFn = None,
        flow_samples: int = 3,
        forward_fn: Optional[Callable[[Any, Any], Any]] = None,
    ) -> None:
        if get_input is not None and not callable(get_input):
            raise ValueError(f"`get_input` must be a function batch -> input or None, got {get_input!r}.")
        if forward_fn is not None and not callable(forward_fn):
            raise ValueError(f"`forward_fn` must be a function (pl_module, x) -> output or None, got {forward_fn!r}.")
        if isinstance(flow_samples, bool) or not isinstance(flow_samples, int) or not 1 <= flow_samples <= 64:
            raise ValueError(f"`flow_samples` must be an int from 1 to 64, got {flow_samples!r}.")
        self.get_input = get_input
        self.flow_samples = flow_samples
        self.forward_fn = forward_fn
        self._pending = False
        self._attempts = 0

    # ------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self.revive()
            self._pending = self.is_enabled("constant-output") or self.is_enabled("batch-mixing")
            self._attempts = 0

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self.is_enabled("optimizer-coverage"):
            return
        try:
            self._check_coverage(trainer, pl_module)
        except Exception as err:  # a check must never lose the user's run
            log.debug("optimizer-coverage failed", exc_info=True)
            self.skip(trainer, "optimizer-coverage", f"could not compare optimizers with the model: {err!r}")

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if not self._pending:
            self.retire("on_train_batch_start")  # the flow checks ran (or were skipped): nothing left per batch
            return
        self._attempts += 1
        facts = self.collector(trainer).facts
        # Callbacks with forward hooks of their own can tell these extra eval-mode forwards from the user's step.
        facts[EXTRA_FORWARD_FACT] = True
        try:
            self._check_flow(trainer, pl_module, batch)
            self._pending = False
        except _Skip as why:
            self._skip_flow(trainer, str(why))
        except _Defer as why:
            if self._attempts >= _MAX_ATTEMPTS:
                self._skip_flow(trainer, str(why))
        except Exception as err:  # a check must never lose the user's run
            log.debug("flow checks failed", exc_info=True)
            self._skip_flow(trainer, f"the extra forward/backward on the first batch failed: {err!r}")
        finally:
            facts[EXTRA_FORWARD_FACT] = False

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._pending:
            self._skip_flow(trainer, "training ended before a usable training batch")

    def _skip_flow(self, trainer: "pl.Trainer", reason: str) -> None:
        self._pending = False
        for check in ("constant-output", "batch-mixing"):
            if self.is_enabled(check):
                self.skip(trainer, check, reason)

    # ------------------------------------------------------------------ optimizer-coverage

    def _check_coverage(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        optimizers = list(trainer.optimizers)
        if not optimizers:
            self.skip(trainer, "optimizer-coverage", "no optimizer is configured")
            return
        held = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        named = list(pl_module.named_parameters())
        cov = flow.optimizer_coverage(named, held)
        check = "optimizer-coverage"
        self.detail(trainer, check, f"{cov.trainable} trainable tensors, {len(optimizers)} optimizer(s), "
                                    f"{len(cov.uncovered)} left out, {cov.foreign} foreign")
        if cov.foreign:
            some_owned = any(id(p) in {id(q) for q in held} for _, p in named if p.requires_grad)
            self.report(
                trainer, check, Severity.ERROR,
                f"The optimizer holds {cov.foreign} parameter tensor(s) ({cov.foreign_numel:,} values, shapes "
                f"{cov.foreign_shapes}) that are not parameters of {type(pl_module).__name__}, so updates go to "
                f"another model" + ("" if some_owned else " and the model itself is never updated") + ".",
                "Build the optimizer from this module's parameters inside `configure_optimizers` "
                "(`torch.optim.Adam(self.parameters(), ...)`), not from a model object created elsewhere; "
                "register every trained sub-network as an attribute of the LightningModule.",
                at_step=False, key="foreign",
                data={"foreign_tensors": cov.foreign, "foreign_values": cov.foreign_numel,
                      "foreign_shapes": cov.foreign_shapes, "optimizers": len(optimizers)},
            )
        if cov.uncovered and not (cov.foreign and len(cov.uncovered) == cov.trainable):
            # (When the optimizer holds none of the model, the error above already says everything.)
            trainable = [n for n, p in named if p.requires_grad]
            modules = flow.uncovered_modules(cov.uncovered, trainable)
            numel = sum(p.numel() for n, p in named if n in set(cov.uncovered))
            self.report(
                trainer, check, Severity.WARNING,
                f"{len(cov.uncovered)} of {cov.trainable} trainable parameter tensors ({numel:,} values) are in no "
                f"optimizer and will never be updated: {summarize_names(modules)}.",
                "Pass these parameters to an optimizer (e.g. `self.parameters()`, or add a param group), or "
                "freeze them with `requires_grad_(False)` if they are meant to stay fixed.",
                where=modules[0], at_step=False, key="uncovered",
                data={"modules": modules, "parameters": cov.uncovered[:50], "values": int(numel),
                      "trainable_tensors": cov.trainable},
            )

    # ------------------------------------------------------------------ constant-output and batch-mixing

    def _check_flow(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any) -> None:
        try:
            x = input_of(batch, self.get_input)
        except Exception as err:
            raise _Skip(f"`get_input` raised {err!r}") from err
        if x is None:
            raise _Skip("could not find the model input in the batch; pass `get_input=`")
        size = batch_size(x)
        if size is None:
            raise _Skip(f"the model input ({type(x).__name__}) holds no tensor with a batch dimension")
        if size < 2:
            raise _Defer("every training batch tried held a single sample")
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in pl_module.parameters()):
            raise _Skip("the model has lazy modules that are not initialised yet")
        calls = self._resolve_call(pl_module, x, batch)
        # cuDNN's RNN kernels refuse a backward pass in eval mode; the native ones give the same gradients.
        with isolate_rng(), _eval_mode(pl_module), _precision_context(trainer), torch.enable_grad(), \
                torch.backends.cudnn.flags(enabled=False):
            first_error: Optional[Exception] = None
            for k, call in enumerate(calls):
                # A signature that binds may still reject the input (a dict where a tensor is expected): try the
                # next way of calling before giving up, and give up with the first way's error.
                run = _FlowRun(pl_module, call, size, self.flow_samples,
                               self.threshold("batch-mixing", "leak_fraction"))
                try:
                    run.forward()
                    break
                except Exception as err:
                    first_error = first_error or err
                    if k == len(calls) - 1:
                        if isinstance(first_error, _Skip):
                            raise _Skip(str(first_error)) from err
                        raise _Skip(f"calling `{calls[0][1]}` on the first batch raised {first_error!r}") from err
            # The two judgements are independent: a reason to skip one must not skip the other.
            for check, judge in (("constant-output", self._judge_constant), ("batch-mixing", self._judge_mixing)):
                if self.is_enabled(check):
                    try:
                        judge(trainer, run)
                    except _SkipOne as why:
                        self.skip(trainer, why.check, str(why))
                    except Exception as err:  # a check must never lose the user's run
                        log.debug("%s failed", check, exc_info=True)
                        self.skip(trainer, check, f"the extra forward/backward on the first batch failed: {err!r}")

    def _resolve_call(self, pl_module: "pl.LightningModule", x: Any, batch: Any) -> list[ModelCall]:
        """Ways to call the model that its signature accepts (:mod:`lightning_sanity.forward`), in order."""
        try:
            return model_calls(pl_module, x, batch, self.forward_fn)
        except CannotCall as why:
            raise _Skip(str(why)) from None

    def _judge_constant(self, trainer: "pl.Trainer", run: "_FlowRun") -> None:
        check, how = "constant-output", run.how
        rows = run.views[0][1].detach()
        differing = run.differing_inputs()
        perturbed = False
        if differing:
            spread, scale = flow.output_spread(rows, differing)
        else:
            if not run.can_perturb:
                raise _SkipOne(check, "every sample of the first batch has the same input, and it is not a float tensor to perturb")
            rows_p = run.perturbed_rows()
            spread, scale = flow.output_spread(torch.stack([rows[0], rows_p[0]]), [1])
            perturbed = True
        compared = len(differing) + (1 if perturbed else 0)
        self.detail(trainer, check, f"output spread {spread:.3g} (scale {scale:.3g}) over {compared} other input(s)")
        if not flow.is_constant(spread, scale):
            return
        spot = run.locate_constant(perturbed)
        where = spot["where"] if spot else None
        zero_init = spot is not None and spot.get("zero_weights", False)
        data = {"output_spread": spread, "output_scale": scale, "samples_compared": compared,
                "perturbed_copy": perturbed, "called_as": how}
        if spot:
            data.update({k: v for k, v in spot.items() if k != "where"})
        if zero_init:
            self.report(
                trainer, check, Severity.INFO,
                f"The model's output is the same for every input at the start because `{where}` starts with all-zero "
                "weights; that is fine if the zero initialisation is deliberate.",
                "Nothing to do if you zero-initialise this layer on purpose; gradients still reach its weights.",
                where=where, data=data, key="zero-init",
            )
            return
        located = f" The inputs stop making a difference {_place(spot, run.model)}." if spot else ""
        unconverged = unconverged_batchnorm(run.model)
        if unconverged:
            # Eval mode normalises with running statistics that are still (mostly) their initial 0/1: the collapse
            # may be theirs, not the model's. The fixed-batch snapshots judge it again as the statistics converge.
            data["batchnorm"] = unconverged
            self.report(
                trainer, check, Severity.INFO,
                f"In eval mode the model gives the same output (largest difference {spread:.3g} at output scale "
                f"{scale:.3g}) for {compared} input(s) that differ, while its BatchNorm running statistics are "
                f"still near their initial 0/1; judged again during training as they converge.{located}",
                batchnorm_advice(unconverged), where=where, data=data, key="constant-unconverged-batchnorm")
            return
        self.report(
            trainer, check, Severity.ERROR,
            f"The model gives the same output (largest difference {spread:.3g} at output scale {scale:.3g}) for "
            f"{compared} input(s) that differ, so it cannot learn anything from its input.{located}",
            "Check the forward for an input multiplied by zero, overwritten, detached into a constant or not used "
            "at all; print each layer's output for two different samples to see where they stop differing.",
            where=where, data=data, key="constant",
        )

    def _judge_mixing(self, trainer: "pl.Trainer", run: "_FlowRun") -> None:
        check, how, pl_module = "batch-mixing", run.how, run.model
        stats_free = [n for n, m in pl_module.named_modules() if isinstance(m, _BatchNorm) and m.running_mean is None]
        if stats_free:
            raise _SkipOne(check, f"BatchNorm without running statistics ({summarize_names(stats_free, 3)}) uses "
                                  "batch statistics even in eval mode, which mixes samples by design")
        if not run.leaves:
            raise _SkipOne(check, "no float input tensor or embedding output with a batch dimension to take the gradient at")
        if not run.output.requires_grad:
            raise _SkipOne(check, "the output does not depend differentiably on the input (no gradient to follow)")
        result = run.mixing()
        self.detail(trainer, check, f"largest cross-sample gradient share {result['leak']:.2g} over "
                                    f"{len(result['samples'])} sample(s)")
        if not flow.is_mixing(result["leak"], run.tolerance):
            return
        if run.pairwise:
            raise _SkipOne(check, "the output is a (batch, batch) matrix, which compares samples by design")
        spot = run.locate_mixing(result["sample"], result["layout"])
        where = None
        located = ""
        if spot:
            inside, before = spot["inside"], spot["before"]
            where = inside if inside else (before or None)
            located = f" The samples get mixed {_place(spot, pl_module)}."
        self.report(
            trainer, check, Severity.WARNING,
            f"Sample {result['sample']}'s output depends on other samples of the batch (e.g. {result['others']}): "
            f"{result['leak']:.1%} of its input gradient lands on them, in eval mode.{located}",
            "Look for a `view`/`reshape` that moves the batch dimension (use `permute`/`transpose` to reorder "
            "dimensions, and `batch_first=True` for RNNs and attention) or a reduction over dimension 0 inside "
            "forward.",
            where=where, key="mixing",
            data={"sample": result["sample"], "leak_fraction": result["leak"], "other_samples": result["others"],
                  "output_layout": result["layout"], "called_as": how,
                  **({"after": spot["after"], "before": spot["before"], "inside": spot["inside"]} if spot else {})},
        )


def _place(spot: dict[str, Any], model: nn.Module) -> str:
    """Words for where a transition found by :func:`flow.locate_transition` happens."""
    inside, after, before = spot["inside"], spot["after"], spot["before"]
    if inside and after == before == inside:
        return f"inside `{inside}`"
    owner = f"`{inside}`" if inside else type(model).__name__
    start = f"the output of `{after}`" if after else "the model input"
    end = f"the input of `{before}`" if before else "the model output"
    if after == inside:
        start = f"the input of `{after}`" if after else "the model input"
    if before == inside:
        end = f"the output of `{before}`" if before else "the model output"
    return f"in the forward of {owner}, between {start} and {end}"


class _Defer(Exception):
    """This batch cannot be used (a single sample); try the next one."""


class _SkipOne(Exception):
    """One flow check cannot run; the other may still."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check


# --------------------------------------------------------------------------- running the model


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Every module in eval mode, each one's own ``training`` flag put back afterwards.

    The flags are set directly rather than through ``train()``, which users may override with side effects.
    """
    saved = [(m, m.training) for m in model.modules()]
    try:
        for m, _ in saved:
            m.training = False
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def _precision_context(trainer: "pl.Trainer") -> Any:
    plugin = getattr(trainer, "precision_plugin", None)
    context = getattr(plugin, "train_step_context", None)
    return context() if callable(context) else contextlib.nullcontext()


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_map_tensors(v, fn) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    if isinstance(obj, Mapping):
        items = {k: _map_tensors(v, fn) for k, v in obj.items()}
        try:
            return type(obj)(items)
        except Exception:
            return items
    return obj


def _tensors(obj: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    _map_tensors(obj, lambda t: found.append(t) or t)
    return found


def _first_tensor(obj: Any) -> Optional[torch.Tensor]:
    for t in _tensors(obj):
        return t
    return None


class _FlowRun:
    """One model call on the first batch with leaf inputs, and the judgements made from it.

    Float input tensors with a batch dimension are replaced by leaf copies that require grad; integer inputs are
    followed to the ``nn.Embedding`` modules, whose outputs are turned into leaves by a forward hook.
    """

    def __init__(self, model: nn.Module, call: tuple, size: int, samples: int,
                 tolerance: float = flow.LEAK_TOLERANCE) -> None:
        self.model = model
        self.tolerance = tolerance  # batch-mixing's leak_fraction threshold
        self.fn, self.how, self.args, self.kwargs = call
        self.size = size
        self.samples = samples
        self.generator = torch.Generator().manual_seed(0)
        self.leaves: list[tuple[torch.Tensor, int]] = []
        self.inputs: list[torch.Tensor] = []
        self.int_inputs: list[torch.Tensor] = []
        self.output: Optional[torch.Tensor] = None
        self.views: list[tuple[str, torch.Tensor]] = []
        self.pairwise = False

    # -------------------------------------------------------------- forward with leaves

    def _leaf_args(self) -> tuple[tuple, dict]:
        self.leaves, self.inputs, self.int_inputs = [], [], []

        def leaf(t: torch.Tensor) -> torch.Tensor:
            if t.dim() == 0 or t.shape[0] != self.size:
                return t
            self.inputs.append(t)
            if t.is_floating_point():
                copy = t.detach().clone().requires_grad_(True)
                self.leaves.append((copy, 0))
                return copy
            self.int_inputs.append(t)
            return t

        return _map_tensors(self.args, leaf), _map_tensors(self.kwargs, leaf)

    def _embedding_batch_dim(self, ids: Any) -> Optional[int]:
        if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dim() == 0:
            return None
        for t in self.int_inputs:
            if ids is t or (ids.shape == t.shape and torch.equal(ids, t)):
                return 0
            if ids.dim() == 2 and ids.shape == t.shape[::-1] and torch.equal(ids, t.t()):
                return 1
        # An index tensor computed inside forward: per sample only if it is (B, ...); a 1-D one of length B
        # may be positions, shared by every sample.
        return 0 if ids.dim() >= 2 and ids.shape[0] == self.size else None

    @contextlib.contextmanager
    def _embedding_leaves(self) -> Iterator[None]:
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            if not isinstance(output, torch.Tensor) or not output.is_floating_point() or not args:
                return None
            dim = self._embedding_batch_dim(args[0])
            if dim is None:
                return None
            leaf = output.detach().requires_grad_(True)
            self.leaves.append((leaf, dim))
            return leaf

        handles = [m.register_forward_hook(hook) for m in self.model.modules()
                   if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self, record: Optional["_Recorder"] = None) -> Any:
        args, kwargs = self._leaf_args()
        with self._embedding_leaves(), (record if record is not None else contextlib.nullcontext()):
            out = self.fn(args, kwargs)
        tensor = flow.first_output_tensor(out, self.size)
        if tensor is None:
            raise _Skip(f"the output of `{self.how}` holds no float tensor with a batch dimension of {self.size}")
        if record is None:
            self.output = tensor
            self.views = flow.per_sample_views(tensor, self.size)
            self.pairwise = flow.is_pairwise_output(tensor, self.size)
        return tensor

    # -------------------------------------------------------------- constant-output

    @property
    def can_perturb(self) -> bool:
        return any(t.is_floating_point() for t in self.inputs)

    def differing_inputs(self) -> list[int]:
        differing: set[int] = set()
        for t in self.inputs:
            differing.update(flow.differing_samples(t.detach().reshape(self.size, -1)))
        return sorted(differing)

    def _perturbed_args(self) -> tuple[tuple, dict]:
        done = False

        def swap(t: torch.Tensor) -> torch.Tensor:
            nonlocal done
            if not done and t.is_floating_point() and t.dim() > 0 and t.shape[0] == self.size:
                done = True
                return flow.perturb(t, 0, self.generator)
            return t

        return _map_tensors(self.args, swap), _map_tensors(self.kwargs, swap)

    def perturbed_rows(self) -> torch.Tensor:
        args, kwargs = self._perturbed_args()
        with torch.no_grad():
            out = flow.first_output_tensor(self.fn(args, kwargs), self.size)
        views = flow.per_sample_views(out, self.size) if out is not None else []
        if not views:
            raise _SkipOne("constant-output", "the output of the perturbed input has no batch dimension")
        return views[0][1]

    def locate_constant(self, perturbed: bool) -> Optional[dict[str, Any]]:
        """Where the inputs stop making a difference, and whether a zero-weight layer explains it."""
        base_args, base_kwargs = (self._perturbed_args() if perturbed else (self.args, self.kwargs))
        reference = 0
        with torch.no_grad():
            first = _first_tensor((base_args, base_kwargs))
            rows = first.reshape(self.size, -1) if first is not None else None
        others = flow.differing_samples(rows) if rows is not None else []
        if not others:
            return None
        picked = others[: max(self.samples, 1)]

        def varies(t: torch.Tensor) -> Optional[torch.Tensor]:
            dim = flow.batch_dim(t, self.size)
            if dim is None or not (t.is_floating_point() or t.is_complex()):
                return None
            r = t.detach().movedim(dim, 0).reshape(self.size, -1)
            idx = torch.tensor(picked, device=r.device)
            return (r.index_select(0, idx) != r[reference]).any()

        recorder = _Recorder(self.model, varies)
        with torch.no_grad(), recorder:
            self.fn(base_args, base_kwargs)
        spot = recorder.transition()
        if spot is None:
            return None
        inside = spot["inside"]
        spot["where"] = inside if inside else (spot["before"] or None)
        module = self.model.get_submodule(inside) if inside else None
        if module is not None and not any(True for _ in module.children()):
            weight = getattr(module, "weight", None)
            spot["zero_weights"] = bool(isinstance(weight, torch.Tensor) and weight.numel() and not weight.detach().any())
        return spot

    # -------------------------------------------------------------- batch-mixing

    def _weighted_sum(self, rows: torch.Tensor, index: int) -> torch.Tensor:
        # Random weights keep the terms of a sample's output from cancelling each other in the gradient.
        w = torch.randn(rows.shape[1], generator=self.generator).to(rows.device, torch.float32)
        return (rows[index].float() * w).sum()

    def mixing(self) -> dict[str, Any]:
        """The worst cross-sample gradient share, for the first output layout that shows none (or the first)."""
        indices = flow.sample_indices(self.size, self.samples)
        leaves = [t for t, _ in self.leaves]
        results = []
        for layout, rows in self.views:
            worst = {"leak": 0.0, "sample": indices[0], "others": [], "layout": layout, "samples": indices}
            for i in indices:
                grads = torch.autograd.grad(self._weighted_sum(rows, i), leaves, retain_graph=True, allow_unused=True)
                for g, (_, dim) in zip(grads, self.leaves):
                    if g is None:
                        continue
                    leak = flow.leak_fraction(g, dim, i)
                    if leak > worst["leak"]:
                        worst.update(leak=leak, sample=i, others=flow.leaking_samples(g, dim, i))
            if not flow.is_mixing(worst["leak"], self.tolerance):
                return worst
            results.append(worst)
        return results[0]

    def locate_mixing(self, index: int, layout: str) -> Optional[dict[str, Any]]:
        """Where sample ``index``'s output stops drawing on other samples, walking the forward in call order."""
        recorder = _Recorder(self.model, lambda t: t if (t.requires_grad and flow.batch_dim(t, self.size) is not None) else None)
        tensor = self.forward(record=recorder)
        rows = dict(flow.per_sample_views(tensor, self.size)).get(layout)
        if rows is None:
            return None
        captured = [(k, t) for k, t in enumerate(recorder.values) if t is not None]
        if not captured:
            return None
        grads = torch.autograd.grad(self._weighted_sum(rows, index), [t for _, t in captured], allow_unused=True)
        flags: list[Optional[bool]] = [None] * len(recorder.values)
        for (k, t), g in zip(captured, grads):
            if g is not None:
                flags[k] = flow.is_mixing(flow.leak_fraction(g, flow.batch_dim(t, self.size), index), self.tolerance)
        return recorder.transition(flags)


class _Recorder:
    """Forward hooks on every module that record, in call order, a value computed from each module's input and
    output tensor, and each module's (enter, exit) times."""

    def __init__(self, model: nn.Module, measure: Callable[[torch.Tensor], Any]) -> None:
        self.model = model
        self.measure = measure
        self.events: list[tuple[int, str, str]] = []
        self.values: list[Any] = []
        self.spans: dict[str, tuple[int, int]] = {}
        self._enter: dict[str, int] = {}
        self._handles: list[Any] = []

    def _add(self, name: str, kind: str, value: Any) -> int:
        t = len(self.events)
        tensor = _first_tensor(value)
        self.events.append((t, name, kind))
        self.values.append(self.measure(tensor) if isinstance(tensor, torch.Tensor) else None)
        return t

    def __enter__(self) -> "_Recorder":
        for name, module in self.model.named_modules():
            def pre(module: nn.Module, args: tuple, name: str = name) -> None:
                # A module called several times keeps its first span: enough to place a transition.
                self._enter.setdefault(name, self._add(name, "in", args))

            def post(module: nn.Module, args: tuple, output: Any, name: str = name) -> None:
                t = self._add(name, "out", output)
                if name not in self.spans:
                    self.spans[name] = (self._enter.get(name, t), t)

            self._handles.append(module.register_forward_pre_hook(pre))
            self._handles.append(module.register_forward_hook(post))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def transition(self, flags: Optional[Sequence[Optional[bool]]] = None) -> Optional[dict[str, Any]]:
        if flags is None:
            values = [v for v in self.values if isinstance(v, torch.Tensor)]
            resolved = iter(torch.stack(values).tolist()) if values else iter(())
            flags = [bool(next(resolved)) if isinstance(v, torch.Tensor) else None for v in self.values]
        events = [flow.Event(t, name, kind, flag) for (t, name, kind), flag in zip(self.events, flags)]
        return flow.locate_transition(events, self.spans)
