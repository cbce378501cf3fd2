r"""
Model checks
^^^^^^^^^^^^

Fit-start checks of the model itself: does every trainable parameter reach an optimizer
(``optimizer-coverage``), does the output change with the input (``constant-output``), and does each sample's
output depend on that sample alone (``batch-mixing``)?

This module holds the callback (hooks, when each check runs, the first batch's model call); each check's findings
are in its own glue module (:mod:`~lightning_sanity.callbacks.optimizer_coverage`,
:mod:`~lightning_sanity.callbacks.constant_output_start`, :mod:`~lightning_sanity.callbacks.batch_mixing`), what the
extra forward measures in ``_flow_run``, and the judgements in :mod:`lightning_sanity.checks.flow`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from lightning_sanity.replays.rng import isolate_rng
from torch import nn
from typing_extensions import override

from lightning_sanity.batch import BatchFn, batch_size, input_of, non_target_keys, slice_batch
from lightning_sanity.callbacks._extra_forward import eval_mode, hidden_step_watches, precision_context
from lightning_sanity.callbacks._graph_batches import GraphEdgeTally
from lightning_sanity.checks.graph_batches import cross_graph_edges, graph_batch_parts
from lightning_sanity.callbacks._flow_run import _Defer, _FlowRun, _Skip, _SkipOne
from lightning_sanity.callbacks._segment_flow import judge_segments
from lightning_sanity.checks.graph_segments import find_segments
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.callbacks.batch_mixing import _BatchMixingGlue
from lightning_sanity.callbacks.constant_output_start import _ConstantOutputGlue
from lightning_sanity.callbacks.optimizer_coverage import _OptimizerCoverageGlue
from lightning_sanity.checks import flow
from lightning_sanity.forward import FORWARD_FN_HINT, CannotCall, ModelCall, model_calls

log = logging.getLogger(__name__)

#: ``collector.facts`` key that is True while ModelChecks runs its extra forwards (hooks elsewhere may skip them).
EXTRA_FORWARD_FACT = "model_checks.extra_forward"

#: How many training batches to wait for one with at least two samples before giving up on the flow checks.
_MAX_ATTEMPTS = 3
#: Samples of the first batch the flow checks run on: enough to tell per-sample flow from mixing (each tested
#: sample's gradient against 8 others: a cross-sample operation reaches them all), a seventh of the passes of a
#: 64-sample batch. Odd, so that it rarely equals another dimension of the model (a power of two would coincide
#: with sequence lengths and class counts: `view(T, B, F)` with B == T moves nothing, 8 logits look like (B, B)).
_FLOW_BATCH = 9


class ModelChecks(_OptimizerCoverageGlue, _ConstantOutputGlue, _BatchMixingGlue, SanityCallback):
    r"""Check, once at the start of fit, that the optimizers cover the model and that information flows per sample.

    - ``optimizer-coverage`` (at ``on_train_start``, and again at each training epoch's end for parameters
      unfrozen later): trainable parameters (``requires_grad``) held by no optimizer are a warning naming their
      modules once backward gives them a gradient (a copy outside the loss graph, such as an EMA
      ``AveragedModel``, never gets one: info); parameters held by an optimizer but not owned by the
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
    flattened ``(B*T, C)`` output) on the first 9 samples of the first batch (the whole batch when the model
    rejects fewer samples), plus one more forward and backward only when a flow check fires, to locate the
    module. Nothing after that. No TensorBoard tags.

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
        self._graph: Optional[bool] = None  # the first batch is a graph batch, judged by its edges
        self._edges: Optional[GraphEdgeTally] = None

    # ------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self.revive()
            self._coverage_reported = None  # filled by the fit-start coverage check
            self._coverage_pending, self._coverage_steps_seen = [], False
            self._pending = self.is_enabled("constant-output") or self.is_enabled("batch-mixing")
            self._attempts = 0
            self._graph, self._edges = None, None

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
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self.is_enabled("optimizer-coverage"):
            return
        try:
            self._judge_pending_coverage(trainer, pl_module)
            self._recheck_coverage(trainer, pl_module)
        except Exception:  # a check must never lose the user's run
            log.debug("optimizer-coverage re-check failed", exc_info=True)

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # The first backward has run: tensors left out of every optimizer now show whether they get gradients.
        self.retire("on_train_batch_end")
        self._coverage_steps_seen = True
        if self.is_enabled("optimizer-coverage"):
            try:
                self._judge_pending_coverage(trainer, pl_module)
            except Exception:  # a check must never lose the user's run
                log.debug("optimizer-coverage gradient read failed", exc_info=True)

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: Any) -> None:
        # The first backward's loss graph, before it is freed: parameters it reaches that the module does not own.
        self.retire("on_before_backward")
        if self.is_enabled("optimizer-coverage"):
            try:
                self._check_unregistered(trainer, pl_module, loss)
            except Exception:  # a check must never lose the user's run
                log.debug("optimizer-coverage graph walk failed", exc_info=True)

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if self._graph is None:
            self._graph = self.is_enabled("batch-mixing") and graph_batch_parts(batch) is not None
            self._edges = GraphEdgeTally() if self._graph else None
        if self._edges is not None and not self._edges.done:
            self._tally_edges(trainer, batch)
        if not self._pending:
            if self._edges is None or self._edges.done:
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

    def _tally_edges(self, trainer: "pl.Trainer", batch: Any) -> None:
        try:
            if self._edges.add(batch):
                self._edges.judge(self, trainer)
        except Exception:  # a check must never lose the user's run
            log.debug("graph batch check failed", exc_info=True)
            self._edges.done = True

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._edges is not None and not self._edges.done:
            try:
                self._edges.judge(self, trainer)  # a run shorter than the tally
            except Exception:
                log.debug("graph batch check failed", exc_info=True)
        if self.is_enabled("optimizer-coverage"):
            try:
                self._judge_pending_coverage(trainer, pl_module, final=True)
            except Exception:  # a check must never lose the user's run
                log.debug("optimizer-coverage final judgement failed", exc_info=True)
        if self._pending:
            self._skip_flow(trainer, "training ended before a usable training batch")

    def _skip_flow(self, trainer: "pl.Trainer", reason: str) -> None:
        self._pending = False
        for check in ("constant-output", "batch-mixing"):
            if self.is_enabled(check) and not (check == "batch-mixing" and self._graph):  # judged by its edges
                self.skip(trainer, check, reason)

    # ------------------------------------------------------------------ constant-output and batch-mixing

    def _check_flow(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any) -> None:
        try:
            x = input_of(batch, self.get_input)
        except Exception as err:
            raise _Skip(f"`get_input` raised {err!r}") from err
        if x is None and self.get_input is None and isinstance(batch, Mapping):
            # Keys of its own (`query_input_ids`, `pixel_values`): the model's input is every key but the targets.
            x = non_target_keys(batch) or None
        if x is None:
            raise _Skip("could not find the model input in the batch; pass `get_input=`")
        size = batch_size(x)
        if size is None:
            raise _Skip(f"the model input ({type(x).__name__}) holds no tensor with a batch dimension")
        if size < 2:
            raise _Defer("every training batch tried held a single sample")
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in pl_module.parameters()):
            raise _Skip("the model has lazy modules that are not initialised yet")
        # A sub-batch shows whether information flows per sample as well as the whole batch does, at a fraction
        # of the forward and backward passes; a model that only runs on the whole batch (a batch size written
        # into a `view`) gets the whole batch.
        sizes = [_FLOW_BATCH, size] if size > _FLOW_BATCH else [size]
        # cuDNN's RNN kernels refuse a backward pass in eval mode; the native ones give the same gradients.
        with isolate_rng(), eval_mode(pl_module), precision_context(trainer), torch.enable_grad(), \
                torch.backends.cudnn.flags(enabled=False), hidden_step_watches():
            try:
                run = self._first_run(pl_module, x, batch, size, sizes)
            except _Skip:
                # No output row per input row: a segment-batched graph batch (nodes with a `batch` vector, one output
                # row per graph) is probed per graph instead. With an edge_index whose first batch already joins
                # two graphs, the edges' verdict names the cause; with clean edges, the model itself may still mix
                # graphs (a softmax or a norm over every node of the batch).
                segments = None if self._graph and cross_graph_edges(*graph_batch_parts(batch)) else \
                    find_segments(batch)
                if segments is None:
                    raise
                judge_segments(self, trainer, pl_module, batch, segments)
                return
            if run.pairwise and run.size < size:
                # An output exactly as wide as the sub-batch (9 classes) reads as a (B, B) comparison of samples:
                # one sample more tells the two apart.
                try:
                    wider = self._first_run(pl_module, x, batch, size, [run.size + 1])
                    run = run if wider.pairwise else wider
                except _Skip:
                    pass
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

    def _first_run(self, pl_module: "pl.LightningModule", x: Any, batch: Any, size: int,
                   sizes: list[int]) -> _FlowRun:
        """The flow forward on the first ``n`` samples, for the first ``n`` of ``sizes`` the model accepts."""
        for k, n in enumerate(sizes):
            inputs, whole = (x, batch) if n >= size else (slice_batch(x, slice(0, n)), slice_batch(batch, slice(0, n)))
            try:
                if batch_size(inputs) != min(n, size):
                    raise _Skip(f"could not cut the first batch to {n} samples")
                run = self._forward(pl_module, inputs, whole, min(n, size))
                run.batch = batch
                # A cut of a padded batch can keep positions that are padding in every kept sample (a softmax over
                # the batch of all -inf gives NaN): gradients through NaN show no flow at all. The whole batch,
                # padded for its own longest sample, is what training sees.
                if n < size and not bool(torch.isfinite(run.output.detach()).all()):
                    raise _Skip(f"the output of the first {n} samples is not finite")
                return run
            except _Skip:
                if k == len(sizes) - 1:
                    raise
        raise _Skip("no batch size to try")

    def _forward(self, pl_module: "pl.LightningModule", x: Any, batch: Any, size: int) -> _FlowRun:
        """The first batch's flow forward, by the first way of calling the model that accepts ``x``."""
        calls = self._resolve_call(pl_module, x, batch)
        first_error: Optional[Exception] = None
        for call in calls:
            # A signature that binds may still reject the input (a dict where a tensor is expected): try the
            # next way of calling before giving up, and give up with the first way's error.
            run = _FlowRun(pl_module, call, size, self.flow_samples, self.threshold("batch-mixing", "leak_fraction"))
            try:
                run.forward()
                return run
            except Exception as err:
                first_error = first_error or err
        if isinstance(first_error, _Skip):
            raise _Skip(str(first_error))
        # Only the checks that run the model on the batch's input are skipped: nothing else depends on this call.
        raise _Skip(f"calling `{calls[0][1]}` on the first batch raised {first_error!r}; when `forward` takes "
                    f"something other than the batch's input (a GAN generator takes noise), {FORWARD_FN_HINT}")

    def _resolve_call(self, pl_module: "pl.LightningModule", x: Any, batch: Any) -> list[ModelCall]:
        """Ways to call the model that its signature accepts (:mod:`lightning_sanity.forward`), in order."""
        try:
            return model_calls(pl_module, x, batch, self.forward_fn)
        except CannotCall as why:
            raise _Skip(str(why)) from None
