r"""
Train mode
^^^^^^^^^^

Watch, at every training batch, that the modules whose behaviour depends on train/eval mode (BatchNorm, Dropout)
are in train mode, and that BatchNorm never trains on a batch of one sample.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_sanity.batch import BatchFn, batch_size, input_of
from lightning_sanity.callbacks.base import SanityCallback
from lightning_sanity.checks.modes import (
    has_initial_statistics, is_batchnorm, is_frozen, mode_dependent_modules, module_kinds, never_learned_statistics,
    owner_fingerprint, split_by_frozen, summarize_names,
)
from lightning_sanity.callbacks._eval_copies import report_outside_training
from lightning_sanity.checks.eval_copies import outside_optimizers, received_gradient
from lightning_sanity.findings import Severity

_training = attrgetter("training")


class TrainModeMonitor(SanityCallback):
    r"""Check the train/eval mode of BatchNorm and Dropout modules at the start of every training batch.

    - A BatchNorm or Dropout (``p > 0``) in eval mode during training is a ``train-mode`` warning naming the
      modules, counted once per batch it happens on (typically a stray ``model.eval()`` or a
      ``self.net.eval()`` in ``on_train_epoch_start``): BatchNorm then normalises with stale running statistics
      and Dropout stops regularising.
    - The same in a copy kept beside the model, whose parameters no optimizer holds and backward never reaches
      (a timm ``ModelEmaV2`` / SWA copy, a momentum teacher, left ``requires_grad=True``), is not training at
      all: judged at the end of the run from the gradients (as ``optimizer-coverage`` does), ``info`` only; a
      warning if backward did reach them.
    - The same in a part of the model whose parameters are all frozen (``requires_grad=False``, e.g. a
      pretrained backbone kept in eval mode while fine-tuning a head) is a deliberate choice: ``info`` only.
    - A batch of one sample while a BatchNorm is in train mode is a warning: its batch statistics are those of a
      single sample (for 2-D inputs PyTorch raises "Expected more than 1 value per channel"; the finding is
      recorded before the step runs, so it reaches the summary anyway). The usual cause is a last batch of one
      (dataset size modulo batch size); ``drop_last=True`` fixes it.

    Cost: the list of BatchNorm/Dropout modules is built once at ``on_train_start``; each batch then reads
    their ``training`` flags (plain attribute reads, no tensor work), and the batch size only while a BatchNorm is
    in train mode. No TensorBoard tags.

    Args:
        get_input: function ``batch -> model input`` used to read the batch size when the batch is not a tensor,
            an ``(x, y, ...)`` tuple or a dict with a common input key.

    Raises:
        ValueError: ``get_input`` is not callable.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.train_mode import TrainModeMonitor
        >>> trainer = Trainer(callbacks=[TrainModeMonitor()], logger=False)
    """

    checks = ("train-mode",)

    def __init__(self, get_input: BatchFn = None) -> None:
        if get_input is not None and not callable(get_input):
            raise ValueError(f"`get_input` must be a function batch -> input or None, got {get_input!r}.")
        self.get_input = get_input
        self._modules: list[tuple[str, Any]] = []
        self._batchnorms: list[tuple[str, Any]] = []
        self._watched: list[Any] = []  # the modules of ``_modules`` and ``_batchnorms``, without their names
        self._watched_batchnorms: list[Any] = []
        # (eval-mode module indices, epoch) -> (frozen names, trainable names): judged once per state and epoch.
        self._judged: dict[tuple, tuple[list[str], list[str], list[str], list[str]]] = {}
        self._pretrained: set[str] = set()
        self._unlearned: dict[str, Any] = {}
        self._eval_batches = 0
        self._held: set[int] = set()
        # eval-mode modules outside every optimizer -> [epoch, batch_idx, global_step of the first batch, batches]
        self._outside: dict[str, list[int]] = {}
        self._reached: set[str] = set()  # modules of ``_outside`` that backward reached
        self._look_for_gradients = False

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self.revive()  # a previous fit may have retired the batch hook

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._modules = mode_dependent_modules(pl_module)
        self._batchnorms = [(n, m) for n, m in self._modules if is_batchnorm(m)]
        self._watched = [m for _, m in self._modules]
        self._watched_batchnorms = [m for _, m in self._batchnorms]
        if not self._modules:  # no Dropout or BatchNorm: no mode to watch, no dispatch on every batch
            self.retire("on_train_batch_start", "on_train_batch_end")
        # Read once, before any training step: statistics that are not the initial 0/1 here were loaded (pretrained).
        try:
            self._pretrained = {n for n, m in self._batchnorms if not has_initial_statistics(m)}
            # Frozen BatchNorm whose statistics were never learned: judged at the end (see _frozen_statistics).
            self._unlearned = {n: owner_fingerprint(pl_module, n) for n, m in self._batchnorms
                               if never_learned_statistics(m) and is_frozen(pl_module, n)}
        except Exception:  # unreadable statistics (lazy, sharded): judged as if never trained, as before
            self._pretrained, self._unlearned = set(), {}
        self._judged = {}
        self._eval_batches = 0
        self._outside, self._reached, self._look_for_gradients = {}, set(), False
        try:
            self._held = {id(p) for opt in trainer.optimizers for group in opt.param_groups for p in group["params"]}
        except Exception:  # no readable optimizer: every module is judged as held, as before
            self._held = set()
        n_bn = len(self._batchnorms)
        self.detail(trainer, "train-mode", f"{n_bn} BatchNorm and {len(self._modules) - n_bn} Dropout module(s) watched")

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if not self._modules:
            return
        try:
            if not all(map(_training, self._watched)):  # C-level loop; the usual answer: all in train mode
                in_eval = tuple(i for i, (_, m) in enumerate(self._modules) if not m.training)
                self._report_eval(trainer, pl_module, in_eval, batch_idx)
            if any(map(_training, self._watched_batchnorms)):
                self._check_batch_of_one(trainer, batch, batch_idx)
        except Exception as err:  # a check must never lose the user's run
            self.skip(trainer, "train-mode", f"could not read the modules' modes: {err!r}")
            self._modules = []

    def _report_eval(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", in_eval: tuple, batch_idx: int) -> None:
        state = (in_eval, trainer.current_epoch)
        if state not in self._judged:
            # requires_grad can change between epochs (unfreezing), so the judgement is redone per epoch.
            names = [self._modules[i][0] for i in in_eval]
            frozen, trainable = split_by_frozen(pl_module, names)
            # BatchNorm kept in eval mode with pretrained running statistics is standard fine-tuning practice.
            pretrained = [n for n in trainable if n in self._pretrained]
            trainable = [n for n in trainable if n not in self._pretrained]
            # A copy no optimizer holds (an EMA) is judged at the end, from whether backward ever reached it.
            outside = outside_optimizers(pl_module, trainable, self._held)
            self._judged[state] = (frozen, [n for n in trainable if n not in outside], pretrained, outside)
            self._look_for_gradients = bool(outside)
        frozen, trainable, pretrained, outside = self._judged[state]
        for name in outside:
            seen = self._outside.setdefault(name, [trainer.current_epoch, batch_idx, trainer.global_step, 0])
            seen[3] += 1
        total = len(self._modules)
        if trainable:
            self._eval_batches += 1
            chosen = set(trainable)
            kinds = module_kinds([m for n, m in self._modules if n in chosen])
            self.report(
                trainer, "train-mode", Severity.WARNING,
                f"{len(trainable)} of {total} {kinds} module(s) with trainable parameters were in eval mode during "
                f"training: {summarize_names(trainable)}.",
                "Find the `.eval()` call that runs during training (e.g. in `on_train_epoch_start`, a `train()` "
                "override or a helper) and remove it, or call `.train()` after it; if keeping these modules in eval "
                "mode is deliberate, freeze their parameters with `requires_grad_(False)` too.",
                where=trainable[0], batch_idx=batch_idx, key="eval-during-training",
                data={"modules": trainable[:50], "module_count": len(trainable), "watched": total},
            )
            self.detail(trainer, "train-mode", f"{len(trainable)} trainable module(s) in eval mode on "
                                               f"{self._eval_batches} batch(es)")
        if pretrained:
            self.report(
                trainer, "train-mode", Severity.INFO,
                f"{len(pretrained)} BatchNorm module(s) are kept in eval mode during training with the running "
                f"statistics they had before the first step (pretrained, not the initial 0/1): "
                f"{summarize_names(pretrained)}; read as fine-tuning with frozen statistics.",
                "Nothing to do if freezing these statistics is deliberate.",
                where=pretrained[0], batch_idx=batch_idx, key="eval-pretrained-statistics",
                data={"modules": pretrained[:50], "module_count": len(pretrained), "watched": total},
            )
        if frozen:
            chosen = set(frozen)
            self.report(
                trainer, "train-mode", Severity.INFO,
                f"{len(frozen)} {module_kinds([m for n, m in self._modules if n in chosen])} module(s) in frozen parts "
                f"of the model are kept in eval mode during training: {summarize_names(frozen)}.",
                "Nothing to do if these modules belong to a frozen pretrained part on purpose.",
                where=frozen[0], batch_idx=batch_idx, key="eval-frozen",
                data={"modules": frozen[:50], "module_count": len(frozen), "watched": total},
            )

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Once per new eval-mode state and epoch, after its first backward: Lightning clears every `.grad` before
        # each validation (`on_validation_model_zero_grad`), so the end of the run is too late to read them.
        if not self._look_for_gradients:
            return
        self._look_for_gradients = False
        try:
            unseen = [n for n in self._outside if n not in self._reached]
            self._reached.update(received_gradient(pl_module, unseen))
        except Exception as err:
            self.skip(trainer, "train-mode", f"could not read the gradients of modules in eval mode: {err!r}")
            self._outside = {}

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._outside:
            try:
                self._reached.update(received_gradient(pl_module, [n for n in self._outside if n not in self._reached]))
                report_outside_training(self, trainer, self._outside, self._reached, self._modules)
            except Exception as err:
                self.skip(trainer, "train-mode", f"could not read the gradients of modules in eval mode: {err!r}")
        if self._unlearned and trainer.global_step > 0:
            try:
                report_unlearned_statistics(self, trainer, pl_module, self._unlearned)
            except Exception as err:
                self.skip(trainer, "train-mode", f"could not read the frozen BatchNorm parameters: {err!r}")

    def _check_batch_of_one(self, trainer: "pl.Trainer", batch: Any, batch_idx: int) -> None:
        try:
            x = input_of(batch, self.get_input)
        except Exception:
            x = None
        size = batch_size(x if x is not None else batch)
        if size != 1:
            return
        training = [n for n, m in self._batchnorms if m.training]
        self.report(
            trainer, "train-mode", Severity.WARNING,
            f"A training batch of 1 sample goes through {len(training)} BatchNorm module(s) in train mode "
            f"({summarize_names(training, 3)}): the batch statistics of one sample normalise it away and corrupt the "
            "running statistics.",
            "Use `drop_last=True` in the training DataLoader (a last batch of one comes from the dataset size modulo "
            "the batch size), a larger batch size, or GroupNorm/LayerNorm instead of BatchNorm.",
            where=training[0], batch_idx=batch_idx, key="batch-of-one",
            data={"batch_size": 1, "batchnorm_modules": training[:50]},
        )


def report_unlearned_statistics(callback: SanityCallback, trainer: "pl.Trainer", pl_module: "pl.LightningModule",
                                fingerprints: dict[str, Any]) -> None:
    """Frozen BatchNorm whose running statistics were still the initial 0/1 when training started, in a part whose
    parameters stayed as they were: a pretrained part carries the statistics it was trained with, so this one was
    never trained nor loaded. A part updated outside the optimizer (an EMA teacher starts random) is not one."""
    names = [n for n, before in fingerprints.items()
             if torch.equal(owner_fingerprint(pl_module, n).cpu(), before.cpu())]
    if not names:
        return
    modes = {n: m.training for n, m in pl_module.named_modules() if n in set(names)}
    in_train = [n for n in names if modes.get(n)]
    how = (f"in train mode, so they are being learned from the batches now ({summarize_names(in_train, 3)})"
           if in_train else "in eval mode, so they normalise with mean 0 / variance 1")
    override = type(pl_module).train is not pl.LightningModule.train
    callback.report(
        trainer, "train-mode", Severity.WARNING,
        f"{len(names)} BatchNorm module(s) in frozen parts of the model (no trainable parameter, unchanged by "
        f"training) started training with running statistics at their initial mean 0 / variance 1: "
        f"{summarize_names(names)}; they are {how}. A pretrained part carries the statistics it was trained "
        "with: this one was never trained nor loaded, so it is likely still at its random initialisation (a "
        "checkpoint that did not load).",
        "Check that the pretrained weights load: `load_state_dict(..., strict=True)`, or read the missing and "
        "unexpected keys it returns (a key prefix such as `model.` or `backbone.` often differs)."
        + (" Note that Lightning does not call the LightningModule's `train()` override during fit (it restores "
           "each module's mode itself), so an `.eval()` there has no effect: call it in `on_train_epoch_start`."
           if override and in_train else ""),
        where=names[0], global_step=0, batch_idx=0, key="frozen-initial-statistics",
        data={"modules": names[:50], "module_count": len(names), "in_train_mode": in_train[:50]},
    )
