r"""
Leakage checks
^^^^^^^^^^^^^^

Can the model read what it must predict? ``causal-leakage`` (an output depends on the elements it predicts) and
``target-leakage`` (a label column, targets equal to the inputs, the target fed unshifted), by perturbing a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from lightning_sanity.replays.rng import isolate_rng
from typing_extensions import override

from lightning_sanity.batch import BatchFn, batch_size, first_part, split_batch
from lightning_sanity.callbacks.base import SanityCallback
from lightning_sanity.callbacks._run_length import planned_batches
from lightning_sanity.callbacks._answer_causal import check_answer_causal
from lightning_sanity.callbacks._copied_targets import copied_random_targets, same_random_targets
from lightning_sanity.callbacks._decoder_input import decoder_future
from lightning_sanity.callbacks._lagged_targets import check_lagged_inputs, find_lagged_inputs
from lightning_sanity.callbacks._future_features import check_future_features
from lightning_sanity.callbacks._inner_shift import shifted_inside
from lightning_sanity.callbacks._last_token import check_last_token_label
from lightning_sanity.callbacks._masked_inputs import check_masked_inputs
from lightning_sanity.callbacks._label_copies import finish_label_copies, start_label_copies
from lightning_sanity.callbacks._label_blocks import LabelBlocks, finish_blocks, follow_blocks
from lightning_sanity.callbacks._label_columns import check_label_columns
from lightning_sanity.callbacks._label_argument import check_label_argument, keep_label_argument, look_sequence_labels
from lightning_sanity.callbacks._target_argument import keep_target_argument, look_target_argument
from lightning_sanity.callbacks._graph_links import GraphLinkHooks
from lightning_sanity.callbacks._step_targets import LossTargets, batch_labels, feature_parts, retarget_call, step_axis
from lightning_sanity.callbacks._target_inputs import check_step_inputs, check_target_inputs
from lightning_sanity.callbacks._model_call import call_output, keep_call, move_call, watch_calls
from lightning_sanity.callbacks._perturbed_call import PerturbedCall
from lightning_sanity.callbacks._raster_causal import check_raster_self_read
from lightning_sanity.callbacks._unshifted_target import check_unshifted_target
from lightning_sanity.callbacks._extra_forward import reading_probe
from lightning_sanity.checks import future_features as FF
from lightning_sanity.checks import leakage as L

log = logging.getLogger(__name__)

#: samples of the first batch kept (on the CPU) for the second look later in the run.
_KEEP = 16


class _Skip(Exception):
    """A leakage test cannot run; the message is the reason shown in the summary."""


class LeakageChecks(GraphLinkHooks, SanityCallback):
    r"""Check that the model cannot read its targets: ``causal-leakage`` and ``target-leakage``.

    On the first training batch:

    - the task is recognised from the data: targets that are the inputs shifted by one along a time axis (language
      models, forecasters), ``labels == input_ids`` in a dict batch (a causal LM that shifts inside), token targets
      equal to the inputs at the same positions; or from the first step's loss: a target cut in the step
      (``self(x[:, :-1])`` against ``x[:, 1:]``: :mod:`._step_targets`), the token input itself when a module gets
      it moved right by one and its last token is never read (BOS prepended in ``forward``: :mod:`._inner_shift`);
    - the model call is observed (forward pre-hooks during that one step): the first module called with the batch's
      input itself, with its arguments as ``training_step`` passed them (or ``forward_fn(pl_module, x)``);
    - ``causal-leakage`` (error): in a next-element task, outputs at positions ``<= t`` (``t`` the middle of the
      sequence) move when only the inputs after ``t`` change (or a teacher-forced decoder input built in the step);
    - ``target-leakage`` (error): outputs at positions ``<= t`` move when only the target at positions ``>= t``
      changes, in a call that receives the batch's target (Lightning's demo ``Transformer``); or one of the forms
      in ``docs/checks/target-leakage.md`` (one ``_*`` module each), some followed over the first epoch.

    Once more after a quarter of the planned training (else the first epoch end, or fit's end), on the kept samples:
    the same tests, and random tokens in targets equal to the input tokens: read above chance (or loss < 0.75 ln V).
    Zero observer effect: extra forwards under ``no_grad`` in eval mode (flags restored), in ``isolate_rng()``, noise
    from a private ``torch.Generator``. Cost: two to eight forwards of the first batch, later two to four of 16.

    Args:
        get_input: ``batch -> input`` when the batch is not a tensor, an ``(x, y, ...)`` tuple or a dict.
        get_target: ``batch -> target`` likewise.
        forward_fn: ``(pl_module, x) -> output``, how to run the model on input ``x``; the target is then never
            passed, so only the input is perturbed.

    Raises:
        ValueError: an argument that is not callable.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.leakage import LeakageChecks
        >>> trainer = Trainer(callbacks=[LeakageChecks()], logger=False)
    """

    checks = ("causal-leakage", "target-leakage")

    def __init__(self, get_input: BatchFn = None, get_target: BatchFn = None,
                 forward_fn: Optional[Callable[[Any, Any], Any]] = None) -> None:
        for name, fn in (("get_input", get_input), ("get_target", get_target), ("forward_fn", forward_fn)):
            if fn is not None and not callable(fn):
                raise ValueError(f"`{name}` must be a callable or None, got {fn!r}.")
        self.get_input, self.get_target, self.forward_fn = get_input, get_target, forward_fn
        self._reset()

    def _reset(self) -> None:
        self.revive()
        self._first = True
        self._handles: list[Any] = []
        self._call: Optional[dict[str, Any]] = None
        self._kept: Optional[dict[str, Any]] = None
        self._derived: Optional[dict[str, Any]] = None  # a call given a loss target another head's label derives from
        self._labelled: Optional[dict[str, Any]] = None  # a tagger's call given its own labels (see _label_argument)
        self._blocks: Optional[LabelBlocks] = None  # columns that split the first batch's classes into intervals
        self._task: Optional[str] = None
        self._dict_batch, self._axis, self._seen = False, 1, 0
        self._second_at: Optional[int] = None
        self._found: set[str] = set()
        self._ran: dict[str, list[str]] = {c: [] for c in self.checks}
        self._skips: dict[str, str] = {}
        self._generator = torch.Generator().manual_seed(1234)
        self._losses = LossTargets()
        self._targets: list[torch.Tensor] = []
        self._xy: tuple[Any, Any] = (None, None)

    # ------------------------------------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._reset()

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        planned = planned_batches(trainer)
        self._second_at = max(2, planned // 4) if planned else None

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                             batch_idx: int) -> None:
        if not self._first:
            self.retire("on_train_batch_start")
            return
        try:
            self._prepare(trainer, pl_module, batch)
        except _Skip as why:
            self._skip_all(str(why))
        except Exception as err:  # a check must never lose the user's run
            log.debug("leakage checks failed", exc_info=True)
            self._skip_all(f"could not read the first training batch: {err!r}")

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: torch.Tensor) -> None:
        self._targets += self._losses.stop()  # the loss calls are made: backward is not watched
        if not self._first:
            self.retire("on_before_backward")

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._seen += 1
        if self._first:
            self._first = False
            self._remove_hooks()
            finish_label_copies(self, trainer)
            self._targets += self._losses.stop()
            try:
                self._after_step(trainer, batch)
            except Exception as err:  # a check must never lose the user's run
                log.debug("leakage checks failed after the first step", exc_info=True)
                self._skip_all(f"could not read the first training step: {err!r}")
            self._targets, self._xy = [], (None, None)
            self._look(trainer, pl_module, "fit start", first=True)
        elif self._second_at is not None and self._seen >= self._second_at:
            self._second_look(trainer, pl_module)
        if self._blocks is not None:
            self._blocks = follow_blocks(self, trainer, batch, trainer.is_last_batch)
        if all(c is None for c in (self._kept, self._derived, self._labelled, self._blocks)):
            self.retire("on_train_batch_end")

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._second_at is None:
            self._second_look(trainer, pl_module)

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._remove_hooks()
        self._losses.stop()

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._remove_hooks()
        finish_blocks(self, trainer)
        if any(c is not None for c in (self._kept, self._derived, self._labelled)) and trainer.global_step > 0:
            self._second_look(trainer, pl_module)
        for check in self.active_checks:
            if check in self._found:
                continue
            if self._ran[check]:
                self.detail(trainer, check, "; ".join(dict.fromkeys(self._ran[check])))
            else:
                self.skip(trainer, check, self._skips.get(check, "training ended before the first batch"))

    # ------------------------------------------------------------------------------------------------ first batch

    def _skip_all(self, reason: str) -> None:
        for check in self.checks:
            self._skips.setdefault(check, reason)

    def _prepare(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any) -> None:
        x, y = split_batch(batch, self.get_input, self.get_target)
        x = x if x is not None or self.get_input is not None else first_part(batch)  # `{"num", "hood", "target"}`
        self._dict_batch = isinstance(batch, Mapping)
        if self._dict_batch and "input_ids" in batch and "labels" in batch:
            x, y = batch["input_ids"], batch["labels"]
        if not isinstance(x, torch.Tensor) or batch_size(x) is None:
            raise _Skip("could not find the model input tensor in the batch; pass `get_input=`")
        y = y if isinstance(y, torch.Tensor) else None
        self._xy = (x, y)
        self._losses.start(sources=(x,))  # what the step's loss compares with: read after the step (`_after_step`)
        if y is not None and self.is_enabled("target-leakage"):
            check_target_inputs(self, trainer, batch, x, y)  # an input computed from the target
            start_label_copies(self, trainer, pl_module, batch, x, y)  # another batch tensor holding the target
        axis = L.shift_axis(x, y) if y is not None else None
        series = FF.shifted_channel(x, y) if axis is None and y is not None else None
        if series is not None:  # the series is one channel of the input, next to features derived from it
            axis = series[0]
            if self.is_enabled("causal-leakage"):
                check_future_features(self, trainer, x, series)
        if axis is not None:
            self._task, self._axis = "shifted", axis
        elif y is not None and L.same_positions(x, y):
            self._task = "same"
            if not isinstance(batch, Mapping):
                self._skips["causal-leakage"] = ("the targets equal the inputs at the same positions: cannot tell "
                                                 "whether the loss shifts them (a next-token task)")
        elif y is not None and y.dim() >= 2:
            self._task = "copied" if L.copied_positions(x, y) is not None else "sequence"
        if self._task != "shifted" and not (self._task == "same" and isinstance(batch, Mapping)):
            self._skips.setdefault("causal-leakage", "the targets are not the inputs shifted by one along a time "
                                                     "axis (nor `labels == input_ids`): not a next-element task")
        if self._task is None:
            self._skips.setdefault("target-leakage", "neither `(N, F)` features with a label to scan nor a sequence "
                                                     "target to perturb")
            if self.forward_fn is None and x.dim() >= 2:  # the step may cut input and target from the batch
                self._handles += watch_calls(pl_module, x, None, self._found_call, views=True)
            return
        if self.forward_fn is not None:
            fn = self.forward_fn
            self._call = {"fn": lambda a, k: fn(pl_module, *a), "how": "forward_fn(pl_module, x)",
                          "args": (x,), "kwargs": {}, "x": x, "y": None, "where": None}
            return
        # A second part that is not the loss's target (a mask): the step may still cut a next-token task from x.
        self._handles += watch_calls(pl_module, x, y, self._found_call, views=self._task in ("sequence", "copied"))

    def _after_step(self, trainer: "pl.Trainer", batch: Any) -> None:
        """What the first step showed: the label its loss compares with, and a next-element task it made."""
        x, y = self._xy
        if self._call is not None:  # the target is what the loss compares with, not always the second part
            retarget_call(self._call, batch, self._targets)
        if self.is_enabled("target-leakage"):
            labels = [t for t in batch_labels(batch, self._targets, y) if isinstance(t, torch.Tensor)
                      and (t.dim() == 1 or (t.dim() == 2 and t.shape[1] == 1))]
            for label in labels:  # each head's label of a multi-task step
                check_label_columns(self, trainer, feature_parts(batch, x, label, self._call), label, batch, x)
                if "target-leakage" in self._found:
                    break
            if "target-leakage" not in self._found:
                check_step_inputs(self, trainer, batch, x, labels, y)
            check_last_token_label(self, trainer, batch, self._call, self._losses.classes)  # a next item left in
            find_lagged_inputs(self, batch, self._call, self._targets, self._task)  # teacher forcing swapped
            self._labelled = keep_label_argument(self._call, self._losses.classes) if self._task == "sequence" else None
            check_masked_inputs(self, trainer, batch, self._call, self._targets)  # an MAE reading hidden values
            self._derived = keep_target_argument(self._call, self._losses.heads)
        if self._task in (None, "sequence", "copied"):
            # A loss the watch does not recognise (pinball, custom NLL): the slices the step cut from the input.
            axis = step_axis(self._call, self._targets or self._losses.sliced()) or (  # or a GPT prepending BOS
                1 if self._task is None and shifted_inside(self, trainer, self._call, self._targets) else None)
            if axis is not None:
                self._task, self._axis = "shifted", axis
                self._skips.clear()
            elif self._task is None:
                check_raster_self_read(self, trainer, self._call, self._targets)  # a PixelCNN reading its pixel
                self._kept = keep_label_argument(self._call, self._losses.classes)
                self._task, self._call = ("label" if self._kept is not None else None), None

    def _found_call(self, call: dict[str, Any]) -> None:
        self._call = self._call or call

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ------------------------------------------------------------------------------------------------ looks

    def _look(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", when: str, first: bool) -> None:
        if self._task is None or (first and self._task == "label"):  # a label argument: tested once trained
            return
        call = self._call if first else self._kept
        if call is None:
            if first:
                self._skip_all("the model was never called with the batch's input tensor itself (it was converted "
                               "or indexed first); pass `forward_fn=` to say how to run the model")
            return
        try:
            with isolate_rng(), reading_probe(pl_module, trainer):
                self._run_tests(trainer, pl_module, call, when, first)
            if first and (self._task in ("shifted", "same") or call["y"] is not None):
                self._kept = keep_call(call, _KEEP)
        except _Skip as why:
            self._skip_all(str(why))
            self._kept = None
        except Exception as err:  # a check must never lose the user's run
            log.debug("leakage look failed", exc_info=True)
            self._skip_all(f"running the model on the first batch failed: {err!r}")
            self._kept = None
        finally:
            self._call = None

    def _second_look(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        progress = f"after {trainer.global_step} optimizer steps"
        self._derived = look_target_argument(self, trainer, pl_module, self._derived, progress)
        self._labelled = look_sequence_labels(self, trainer, pl_module, self._labelled, progress)
        if self._kept is None:
            return
        try:
            self._kept = move_call(self._kept, pl_module.device)
            self._look(trainer, pl_module, progress, first=False)
        finally:
            self._kept = None

    def _output(self, call: dict[str, Any], args: tuple, kwargs: dict, size: int, length: int) -> tuple:
        found = call_output(call, args, kwargs, size, length, self._axis)
        if found is None:
            raise _Skip(f"the output of `{call['how']}` holds no float tensor with a batch dimension")
        return found

    def _run_tests(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", call: dict[str, Any], when: str,
                   first: bool) -> None:
        if self._task == "label":  # a call given the head's label (`self(x, one_hot(y))`)
            return check_label_argument(self, trainer, call, when)
        x, y = call["x"], call["y"]
        probe = PerturbedCall(self, call)
        if first:  # teacher forcing: a decoder input that is the target shifted right, or the wrong way
            check_lagged_inputs(self, trainer, call, when, probe)
            if self._task == "sequence":
                decoder_future(self, trainer, call, when, probe)
        axis = self._axis if self._task == "shifted" else 1
        size, length = int(x.shape[0]), int(x.shape[axis])
        if length < 2:
            raise _Skip(f"sequences of length {length} have no positions to perturb")
        t = (length - 1) // 2
        target = y if isinstance(y, torch.Tensor) and y is not x and y.dim() >= 2 else None  # fed to the call
        if probe.base(size, length) is None:
            # An encoder-decoder's outputs follow the target's length, not the input's: the target is still tried.
            if target is not None and int(target.shape[1]) >= 2 and self.is_enabled("target-leakage") \
                    and "target-leakage" not in self._found:
                check_unshifted_target(self, trainer, call, when, probe, target, 1)
            raise _Skip(f"the output of `{call['how']}` has no dimension of {length} positions to compare")

        def perturbed(old: torch.Tensor, t: int = t, **offset: int) -> tuple[float, float, int, bool]:
            """The change of the outputs up to ``t`` when ``old`` changes after ``t``: its size, its scale, the
            first position that moved, and whether that is more than round-off."""
            found = probe.change(old, t, axis, **offset)
            return tuple(found) if found is not None else (0.0, 0.0, -1, False)

        causal_ok = self._task == "shifted" or (self._task == "same" and "causal-leakage" not in self._skips)
        if causal_ok and self.is_enabled("causal-leakage") and "causal-leakage" not in self._found:
            for at in L.split_positions(length):  # two boundaries: one cuts every pooled block
                change, scale, first_pos, moved = perturbed(x, at)
                if moved:
                    break
            self._ran["causal-leakage"].append(f"outputs at positions <= {t} of {length} independent of later inputs")
            if moved:
                self._found.add("causal-leakage")
                self.report(
                    trainer, "causal-leakage", "error",
                    f"The output at position {first_pos} changes (by up to {change:.3g} at output scale {scale:.3g}) "
                    f"when only the inputs after position {at} of {length} change ({when}, `{call['how']}`): the "
                    "model sees the future elements it is trained to predict, so its training loss means nothing "
                    "and it fails when generating.",
                    L.CAUSAL_ADVICE, where=call["where"], key="causal",
                    data={"position": first_pos, "perturbed_after": at, "length": length, "change": change,
                          "scale": scale, "when": when, "called_as": call["how"]},
                )
        elif first and self._task == "copied" and self.is_enabled("causal-leakage"):
            check_answer_causal(self, trainer, call, when)  # labels == input_ids on the answer only: SFT, prefix LM
        if not self.is_enabled("target-leakage") or "target-leakage" in self._found:
            return
        if target is not None and int(target.shape[axis]) == length:
            if check_unshifted_target(self, trainer, call, when, probe, target, axis):
                return
        elif self._task in ("shifted", "sequence"):
            self._ran["target-leakage"].append(f"`{call['how']}` is not given the target" + (
                " (the inputs after each position are causal-leakage's)" if self._task == "shifted" else ""))
        if self._task in ("same", "copied") and not first:
            (same_random_targets if self._task == "same" else copied_random_targets)(self, trainer, call, size,
                                                                                      length, when)
