"""Measure for ``input-scale`` and ``label-distribution``: what the first training batches' inputs and labels look like.

:class:`_InputSample` and :class:`_LabelSample` hold the figures (on the host, a copy per batch that Lightning
already delivers: no extra pass over the data); :class:`_BatchReader` reads a batch into them, names its fields,
and watches the first step for what the model does first with each float input. No judgement here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from lightning_sanity.batch import INPUT_KEYS, TARGET_KEYS, split_batch
from lightning_sanity.callbacks._extra_forward import hidden_step_watches
from lightning_sanity.callbacks._step_watch import META_OPS, SHAPE_OPS, StepWatch, function_name
from lightning_sanity.checks import data as D
from lightning_sanity.checks import duplicate_labels as DL
from lightning_sanity.checks.input_use import next_first_use
from lightning_sanity.checks.padding_labels import PaddingLabels

_MAX_FIELDS = 8
#: Dense targets (segmentation masks, token sequences) beyond this many elements are summarised by min and max only.
_MAX_LABELS = 1 << 18
#: Log transforms, and the shifts and clamps that may come first (`log(x + eps)`, `log10(clamp(x, min=amin))`).
_LOG_OPS = frozenset({"log", "log1p", "log2", "log10", "log_", "log1p_", "log2_", "log10_"})
_SHIFT_OPS = frozenset({"add", "__add__", "__radd__", "clamp", "clamp_min", "clip", "maximum", "abs"})
#: Weighted layers whose input is judged as the first layer's, and the normalisations that make it moot.
_FIRST_LAYER_OPS = frozenset({"linear", "conv1d", "conv2d", "conv3d", "gru", "lstm", "rnn_tanh", "rnn_relu"})
_NORM_OPS = frozenset({"batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "normalize"})
#: Integer types of the same width as each float type: a float label's bits travel in the fingerprints' int64 copy.
_FLOAT_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
               torch.bfloat16: torch.int16}


@dataclasses.dataclass
class _InputSample:
    """The float inputs of the first batches, per field."""

    stats: dict[str, D.InputStats] = dataclasses.field(default_factory=dict)
    #: integer fields (token ids, indices, masks): their scale means nothing
    integer_fields: set[str] = dataclasses.field(default_factory=set)
    signal_fields: set[str] = dataclasses.field(default_factory=set)  # integer samples judged as values
    #: per field, the first operation the model applies to it in the first step
    first_use: dict[str, str] = dataclasses.field(default_factory=dict)
    #: fields the model takes the log of in the first step (directly, or after a shift or clamp: ``log(x + eps)``)
    logged: set[str] = dataclasses.field(default_factory=set)
    #: the first weighted layer's input in the first step: (op, its weight, per-feature RMS on the device)
    first_layer: Optional[tuple[str, Any, torch.Tensor]] = None
    first_layer_seen: bool = False  # that layer, or a normalisation layer before it, has run
    #: why ``input-scale`` cannot run, if it cannot
    missing: Optional[str] = None


@dataclasses.dataclass
class _LabelSample:
    """The targets of the first batches, and fingerprints of the inputs they belong to."""

    values: list[torch.Tensor] = dataclasses.field(default_factory=list)  # per batch, on the CPU
    shapes: list[tuple[int, ...]] = dataclasses.field(default_factory=list)  # each batch's target shape
    #: (min, max) per batch of targets too dense to keep (see ``_MAX_LABELS``)
    ranges: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    dense: bool = False
    floating: bool = False
    prints: list[torch.Tensor] = dataclasses.field(default_factory=list)  # int64 hashes of the inputs
    print_features: int = 0
    #: the prints are of a dict batch's effective tokens (``input_ids`` where ``attention_mask`` is set)
    print_tokens: bool = False
    field: Optional[str] = None
    pad_id: Optional[int] = None
    #: whether every batch's labels had the shape of an integer input of 2+ dimensions (token labels, one per
    #: position), the only layout in which a label can be compared with the padding token
    token_layout: bool = True
    #: sizes of axis 1 of the integer inputs shaped (batch, group, length): one sequence per candidate
    groups: set[int] = dataclasses.field(default_factory=set)
    #: the labels found at padded positions (checks/padding_labels.py), set at fit start
    padding: Optional[PaddingLabels] = None
    #: why ``label-distribution`` cannot run, if it cannot
    missing: Optional[str] = None


class _BatchReader:
    """Reading the first batches into :class:`_InputSample` / :class:`_LabelSample`; mixed into
    :class:`~lightning_sanity.callbacks.data_checks.DataChecks`."""

    #: the batch part that holds the labels when the first step's loss showed it is not the second one
    _label_index: Optional[int] = None

    def _observe(self, batch: Any) -> None:
        with hidden_step_watches():  # our reads of the batch are not the user's step (nor worth watching)
            fields = self._read(batch)
        if self._seen == 1:
            self._watch_first_use(fields)  # last: nothing of ours may pass for the model's first use

    def _read(self, batch: Any) -> list[tuple[str, torch.Tensor]]:
        x, y = split_batch(batch, self.get_input, self.get_target)
        if self._label_index is not None:  # the part the first step's loss compared with
            y = batch[self._label_index]
        self._seen += 1
        fields = self._input_fields(x, self._input_name(batch))
        if not fields:
            self._inputs.missing = ("the batch's input was not found or holds no tensor; pass `get_input=` "
                              "(a function batch -> input)")
        for name, tensor in fields:
            if not (tensor.is_floating_point() or tensor.is_complex()):
                if not D.integer_signal(tensor):
                    self._inputs.integer_fields.add(name)  # token ids, indices, masks: their scale means nothing
                    continue
                # Raw 8/16-bit samples (PCM audio, pixels, sensor counts): their scale is the values'. The first
                # step's first use of them (after the cast) says whether the model rescales them or embeds them.
                self._inputs.signal_fields.add(name)
                tensor = tensor.float()
            if tensor.is_complex() or tensor.dim() == 0:
                continue
            self._inputs.stats.setdefault(name, D.InputStats()).add(tensor)
        if self._labels.pad_id is None:
            self._labels.pad_id = D.padding_token(batch)
        if not isinstance(y, torch.Tensor) or y.dim() == 0:
            self._labels.missing = ("the batch's target was not found; pass `get_target=` (a function batch -> target)"
                               if y is None else f"the target is a {type(y).__name__}, not a tensor")
        else:
            self._labels.field = self._target_name(batch)
            self._collect_labels(y, fields, batch)
            if self._labels.padding is not None:
                self._labels.padding.add_batch(batch, x, y)
        return fields

    def _collect_labels(self, y: torch.Tensor, fields: list[tuple[str, torch.Tensor]], batch: Any) -> None:
        y = y.detach()
        self._labels.floating = self._labels.floating or y.is_floating_point()
        # The layout of the labels against the integer inputs (token ids): one label per position, or one per
        # sample of a (batch, group, length) input that holds a group of candidate sequences.
        ids = [t for _, t in fields if not (t.is_floating_point() or t.is_complex() or D.integer_signal(t))]
        self._labels.token_layout = self._labels.token_layout and any(
            t.dim() >= 2 and t.shape == y.shape for t in ids)
        self._labels.groups.update(int(t.shape[1]) for t in ids if t.dim() >= 3 and t.shape[0] == y.shape[0])
        if y.numel() > _MAX_LABELS:
            self._labels.dense = True
            packed = torch.stack([y.min().double(), y.max().double()]).cpu()
            self._labels.ranges.append((float(packed[0]), float(packed[1])))
            return
        per_sample = y.dim() == 1 or (y.dim() == 2 and y.shape[1] == 1)
        self._labels.dense = self._labels.dense or not per_sample
        # Fingerprints of the inputs travel with the labels, in one copy to the host.
        main = next((t for _, t in fields if t.dim() > 0 and t.shape[0] == y.shape[0]), None)
        self._labels.shapes.append(tuple(y.shape))
        if per_sample and main is not None and main.dim() >= 1 and not y.is_complex():
            mask = DL.token_mask(batch, main)
            prints = DL.input_fingerprints(main) if mask is None else DL.token_fingerprints(main, mask)
            self._labels.print_tokens = mask is not None
            self._labels.print_features = int(main[0].numel()) if main.dim() > 1 else 1
            flat = y.reshape(-1)
            bits = _FLOAT_BITS.get(flat.dtype)
            # The labels' exact bits ride along as int64 (a float label's bit pattern, restored on the host).
            packed = torch.cat([flat.contiguous().view(bits).long() if bits is not None else flat.long(), prints]).cpu()
            n = y.shape[0]
            labels = packed[:n].to(bits).view(flat.dtype) if bits is not None else packed[:n]
            self._labels.values.append(labels.to(torch.float64))
            self._labels.prints.append(packed[n:])
        else:
            self._labels.values.append(y.reshape(-1).to(torch.float64).cpu())

    def _watch_first_use(self, fields: list[tuple[str, torch.Tensor]]) -> None:
        """Watch the first training step for what the model does first with each float input, and whether it takes
        the input's log (after a shift or a clamp, as `AmplitudeToDB` does)."""
        tensors = {name: t for name, t in fields if name in self._inputs.stats}

        def tagged(args: tuple) -> Any:
            for arg in (a for v in args for a in (v if isinstance(v, (list, tuple)) else (v,))):
                tag = watch.tags.get(arg)
                if tag and ("input" in tag or "via" in tag):
                    yield arg, tag

        def before(func: Any, args: tuple, kwargs: dict) -> None:
            name = function_name(func)
            if name in SHAPE_OPS or name in META_OPS:
                return
            if not self._inputs.first_layer_seen and (name in _FIRST_LAYER_OPS or name in _NORM_OPS):
                self._see_first_layer(name, args)
            for _, tag in tagged(args):
                if name in _LOG_OPS:
                    self._inputs.logged.add(tag.get("input") or tag["via"])
                if "input" in tag:
                    # A statistic of the input (RevIN's `x.mean(1)`) is read, not fed on (see checks/input_use.py).
                    self._inputs.first_use[tag["input"]] = next_first_use(self._inputs.first_use.get(tag["input"]),
                                                                         name)

        def after(func: Any, args: tuple, kwargs: dict, result: Any) -> None:
            if function_name(func) in _SHIFT_OPS:
                for _, tag in tagged(args):
                    watch.tags.set(result, {**(watch.tags.get(result) or {}), "via": tag.get("input") or tag["via"]})
                    return

        watch = StepWatch(before=before, after=after)
        for name, tensor in tensors.items():
            watch.tags.set(tensor, {"input": name})
        self._watch = watch.start()

    def _see_first_layer(self, name: str, args: tuple) -> None:
        """The per-feature RMS of what the first weighted layer receives, unless a normalisation layer runs first
        (``input-scale`` kind ``mixed-scale``, checks/mixed_scale.py)."""
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or isinstance(x, torch.nn.Parameter):
            return  # a lookup, a learned query: not the data
        self._inputs.first_layer_seen = True
        if name in _NORM_OPS or x.dim() < 2:
            return
        weight = next((a for v in args[1:] for a in (v if isinstance(v, (list, tuple)) else (v,))
                       if isinstance(a, torch.nn.Parameter)), None)
        with torch.no_grad():
            x = x.detach().float()
            # Features are channels (axis 1) for a convolution, the last axis for linear and recurrent layers.
            x = x.transpose(0, 1).reshape(x.shape[1], -1) if name.startswith("conv") else x.reshape(-1, x.shape[-1]).T
            self._inputs.first_layer = (name, weight, x.pow(2).mean(1).sqrt())

    # ------------------------------------------------------------------ naming the fields

    def _input_name(self, batch: Any) -> str:
        if self.get_input is not None:
            return "get_input(batch)"
        if isinstance(batch, Mapping):
            return next((k for k in INPUT_KEYS if k in batch), "input")
        if isinstance(batch, Sequence) and not isinstance(batch, str):
            return "batch[0]"
        return "batch"

    def _target_name(self, batch: Any) -> str:
        if self.get_target is not None:
            return "get_target(batch)"
        if self._label_index is not None:
            return f"batch[{self._label_index}]"
        if isinstance(batch, Mapping):
            return next((k for k in TARGET_KEYS if k in batch), "target")
        return "batch[1]"

    @staticmethod
    def _input_fields(x: Any, name: str) -> list[tuple[str, torch.Tensor]]:
        if isinstance(x, torch.Tensor):
            return [(name, x)]
        if isinstance(x, Mapping):
            items = [(f"{name}[{k!r}]", v) for k, v in x.items()]
        elif isinstance(x, Sequence) and not isinstance(x, str):
            items = [(f"{name}[{i}]", v) for i, v in enumerate(x)]
        else:
            return []
        return [(n, v) for n, v in items if isinstance(v, torch.Tensor)][:_MAX_FIELDS]
