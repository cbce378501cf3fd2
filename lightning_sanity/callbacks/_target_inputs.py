"""``target-leakage`` glue for inputs computed from the target, on the first training batch: an image channel that is
a function of the class mask around each pixel, a label word among a classifier's tokens, a per-position feature of
a next-token model read from the next token, a placeholder token for every word of a tag class
(:mod:`._tag_placeholders`), node features holding each node's own label (:mod:`._neighbour_labels`), an inpainting
input that shows its whole target beside a hole mask (:mod:`lightning_sanity.checks.visible_holes`, read from the
module's first call and judged after the step). After the step it also keeps the labels the losses scored, for
:mod:`._val_label_argument`. The judgements are in :mod:`lightning_sanity.checks.target_inputs`; called by
:class:`~lightning_sanity.callbacks.leakage.LeakageChecks`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.batch import batch_items
from lightning_sanity.callbacks._class_marker import report_class_marker
from lightning_sanity.callbacks._extra_forward import hidden_step_watches
from lightning_sanity.callbacks._model_call import storage_of
from lightning_sanity.callbacks._neighbour_labels import finish_neighbour_labels, scan_neighbour_labels
from lightning_sanity.callbacks._tag_placeholders import report_tag_placeholders
from lightning_sanity.callbacks._val_label_argument import record_label_heads
from lightning_sanity.callbacks._val_label_input import note_training_columns
from lightning_sanity.checks import leakage as L
from lightning_sanity.checks.length_features import length_channels, shifted_with_end
from lightning_sanity.checks import target_inputs as T
from lightning_sanity.checks import visible_holes as H
from lightning_sanity.checks import window_scaling as W

log = logging.getLogger(__name__)
CHECK = "target-leakage"
MASK_ADVICE = ("Compute every input channel from the input alone (`sobel(image)`, not `sobel(mask)`): at inference no "
               "mask exists, so a channel drawn from it is not available, and the model trained on it fails.")
TOKEN_ADVICE = ("Build the classifier's inputs without the label: a prompt template that appends the verbalised "
                "label (for a language-model objective) must be called with `label=None` for classification.")
LENGTH_ADVICE = ("Compute each per-position feature from what is known at that position: the position itself (`t`, "
                 "`log1p(t)`), the time elapsed so far; never normalise by the sequence's final length or count the "
                 "elements still to come.")
FEATURE_ADVICE = ("Compute every per-position feature at t from the tokens up to t only (a word-start flag from the "
                  "previous token, never a word-end flag from the next one): the token after t is the target.")


def check_target_inputs(callback: Any, trainer: Any, batch: Any, x: Any, y: Optional[torch.Tensor]) -> None:
    """Run the scans that apply to this batch; a failure here leaves the other leakage tests running."""
    callback._val_labels = None  # this fit's labels come with its first step (record_label_heads)
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        return
    note_training_columns(callback, x, y)  # for a validation input holding its label (_val_label_input)
    try:
        _scan(callback, trainer, batch, x, y)
    except Exception as err:  # a check must never lose the user's run, nor the other leakage tests
        log.debug("target-input scan failed", exc_info=True)
        callback._ran[CHECK].append(f"could not scan the inputs for values computed from the target: {err!r}")


def check_step_inputs(callback: Any, trainer: Any, batch: Any, x: Any, labels: list, first: Any) -> None:
    """After the first step, what needs its loss targets: node features holding the labels the loss compares with,
    and the token scans with the first of ``labels``."""
    if finish_neighbour_labels(callback, trainer):
        return
    record_label_heads(callback, batch)  # for a look at the first validation call (teacher forcing kept there)
    hole, callback._hole = getattr(callback, "_hole", None), None
    if hole is not None and CHECK not in callback._found:
        _report_hole(callback, trainer, *hole)
    if labels:
        check_step_label_tokens(callback, trainer, batch, x, labels[0], first)
    if CHECK not in callback._found:
        _step_tag_placeholders(callback, trainer, batch, x, first)


def _step_tag_placeholders(callback: Any, trainer: Any, batch: Any, x: Any, first: Any) -> None:
    """The tag-placeholder scan with a loss target of one class per input token, when the batch part taken for the
    target at the start was none (``(ids, lengths, tags)``, a ``slot_labels`` key beside an intent)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.is_floating_point() or (
            isinstance(first, torch.Tensor) and first.shape == x.shape):
        return
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    for t in getattr(callback, "_targets", []):
        if isinstance(t, torch.Tensor) and t.numel() == x.numel() and not t.is_floating_point() and t.device == x.device:
            try:
                report_tag_placeholders(callback, trainer, x, t.reshape(x.shape), mask)
            except Exception as err:  # a check must never lose the user's run, nor the other leakage tests
                log.debug("tag-placeholder scan failed", exc_info=True)
                callback._ran[CHECK].append(f"could not scan the tokens for tag placeholders: {err!r}")
            return


def check_step_label_tokens(callback: Any, trainer: Any, batch: Any, x: Any, label: Any, first: Any) -> None:
    """The token scans again with the label the first step's loss compared with, when that is not the batch part
    taken for the target at the start (``(seqs, lengths, y)``: the second part is the lengths)."""
    if not isinstance(x, torch.Tensor) or not isinstance(label, torch.Tensor) or label is first:
        return
    label = label.reshape(-1) if label.dim() == 2 and label.shape[1] == 1 else label
    if x.dim() != 2 or x.is_floating_point() or label.shape != x.shape[:1]:
        return
    try:
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        _label_tokens(callback, trainer, x, label, mask)
    except Exception as err:  # a check must never lose the user's run, nor the other leakage tests
        log.debug("target-input scan failed", exc_info=True)
        callback._ran[CHECK].append(f"could not scan the tokens for the loss's label: {err!r}")


def _scan(callback: Any, trainer: Any, batch: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    scan_neighbour_labels(callback, batch)  # a full graph whose features hold the node labels: judged after the step
    if x.is_floating_point() and y.is_floating_point() and x.dim() in (2, 3) and y.dim() in (2, 3):
        _window_scaling(callback, trainer, x, y)
    if x.is_floating_point() and x.dim() in (3, 4):
        _watch_model_input(callback, trainer, batch)  # an inpainting input that holds its target
    if x.dim() == 4 and x.is_floating_point() and y.dim() in (3, 4) and CHECK not in callback._found:
        _mask_channels(callback, trainer, x, y)
    elif x.dim() == 2 and not x.is_floating_point() and y.dim() == 1:
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        _label_tokens(callback, trainer, x, y, mask)
    elif x.dim() == 2 and not x.is_floating_point() and y.shape == x.shape:
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        if not report_tag_placeholders(callback, trainer, x, y, mask) and isinstance(batch, Mapping):
            _next_token_features(callback, trainer, batch, x, y)


def _found(callback: Any) -> None:
    callback._found.add(CHECK)


def _mask_channels(callback: Any, trainer: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    channels = T.mask_channels(x, y)
    callback._ran[CHECK].append(f"no input channel is a function of the target mask around each pixel "
                                f"({x.shape[1]} channels)")
    if not channels:
        return
    _found(callback)
    channel, side, chance = channels[0]
    callback.report(
        trainer, CHECK, "error",
        f"Input channel {channel} is, at every interior pixel of the first training batch, one function of the target "
        f"mask over the {side}x{side} window around it (chance below 1e{chance:.0f}): it was computed from the answer "
        "(an edge or outline map of the mask), so the model reads the segmentation instead of finding it, and "
        "fails where the channel comes from the image.",
        MASK_ADVICE, where=f"input channel {channel}", key="mask-channel",
        data={"channels": [c for c, _, _ in channels], "window": side, "log10_chance": chance},
    )


def _watch_model_input(callback: Any, trainer: Any, batch: Any) -> None:
    """Look at the LightningModule's first call of the first step, the batch's input or one ``training_step`` built
    (``self(torch.cat([x, m], 1))``), when its output is dense (the input's positions): a one-shot forward hook,
    removed with the leakage checks' other watches. A hole found is judged after the step, with its loss targets."""
    def first_call(mod: Any, args: tuple, kwargs: dict, output: Any) -> None:
        handle.remove()
        given = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if not isinstance(given, torch.Tensor) or not isinstance(output, torch.Tensor) or given.dim() not in (3, 4):
            return
        if output.shape[0] != given.shape[0] or output.shape[2:] != given.shape[2:]:  # no dense output
            return
        try:
            items = batch_items(batch)
            found = H.visible_hole(given, [v for _, v in items])
            callback._hole = None if found is None else (items[found[2]], found)
        except Exception:  # a check must never lose the user's run
            log.debug("visible-hole scan failed", exc_info=True)

    callback._hole = None
    handle = trainer.lightning_module.register_forward_hook(first_call, with_kwargs=True)
    callback._handles.append(handle)


def _report_hole(callback: Any, trainer: Any, item: tuple, found: tuple) -> None:
    """Report the hole unless the step's recognised losses all compare with other tensors (a forecaster fed a binary
    event channel beside the series, scored on its next values)."""
    (key, shown), (channel, hole, _, target_channel) = item, found
    targets = [t for t in getattr(callback, "_targets", []) if isinstance(t, torch.Tensor)]
    if targets and all(storage_of(t) != storage_of(shown) for t in targets):
        callback._ran[CHECK].append(f"the model's input shows batch[{key!r}] beside a hole mask, but the loss compares "
                                    "with another tensor")
        return
    _found(callback)
    callback.report(
        trainer, CHECK, "error",
        f"Channel {channel} of the model's input in the first training step equals batch[{key!r}] (channel "
        f"{target_channel}) at every position of every sample, while its channel {hole} is a hole mask: the model is "
        "given the very values it must fill in (the hole punched into a view of the stored image, so the target is "
        "holed too, or the unmasked image passed instead of the masked one). The loss falls at once and the model "
        "cannot inpaint.",
        "Punch the hole into a copy (`holed = image.clone()`) and pass the masked image (`x * (1 - mask)`) with the "
        "mask; keep the untouched image as the target.",
        where=f"input channel {channel}", key="visible-hole",
        data={"channel": channel, "hole_channel": hole, "target": str(key), "target_channel": target_channel},
    )


def _label_tokens(callback: Any, trainer: Any, x: torch.Tensor, y: torch.Tensor, mask: Any) -> None:
    tokens = T.label_tokens(x, y, mask if isinstance(mask, torch.Tensor) else None)
    callback._ran[CHECK].append("no token near the end of the texts marks exactly the samples of one class, for "
                                "every class")
    if not tokens:
        report_class_marker(callback, trainer, x, y, mask if isinstance(mask, torch.Tensor) else None)
        return
    _found(callback)
    callback.report(
        trainer, CHECK, "error",
        f"For every class of the first training batch one token is present in exactly that class's samples, at the "
        f"same place from the end of every text (class: token {tokens}), beyond chance: the inputs hold their label (a template that appends the "
        "verbalised label), so the model reads the answer and fails on inputs formatted without it.",
        TOKEN_ADVICE, where="input tokens", key="label-token",
        data={"tokens": {str(k): v for k, v in tokens.items()}, "samples": int(x.shape[0])},
    )


def _next_token_features(callback: Any, trainer: Any, batch: Mapping, x: torch.Tensor, y: torch.Tensor) -> None:
    aligned = {k: v for k, v in batch.items() if T.is_feature_key(k) and isinstance(v, torch.Tensor)
               and v.dim() in (2, 3) and tuple(v.shape[:2]) == tuple(x.shape)}
    if L.same_positions(x, y):  # the model shifts inside: the target at t is the label at t + 1
        ids, target, cut = x[:, :-1], y[:, 1:], x.shape[1] - 1
    elif L.shift_axis(x, y) == 1:
        ids, target, cut = x, y, x.shape[1]
    elif shifted_with_end(x, y):  # the last target an end marker no input holds: features fixed by length only
        _length_features(callback, trainer, aligned, y)
        return
    else:
        return
    aligned = {k: v[:, :cut] for k, v in aligned.items()}
    if _length_features(callback, trainer, aligned, target):
        return
    features = {k: v for k, v in aligned.items() if v.dim() == 2 or v.shape[2] == 1}
    if not features:
        return
    found = T.next_token_features(ids, target, features)
    callback._ran[CHECK].append(f"no per-position feature ({', '.join(features)}) read from the next token")
    if not found:
        return
    _found(callback)
    name, chance = found[0]
    callback.report(
        trainer, CHECK, "error",
        f"The batch's per-position feature `{name}` is at every position t one function of the token at t + 1, the "
        f"target (chance below 1e{chance:.0f}), and of no window of the tokens up to t: it was computed from the next "
        "token, so the model reads part of the answer and cannot have it when generating.",
        FEATURE_ADVICE, where=f"batch[{name!r}]", key="next-token-feature",
        data={"features": [n for n, _ in found], "log10_chance": chance},
    )


def _length_features(callback: Any, trainer: Any, features: dict, target: torch.Tensor) -> bool:
    """A per-position feature fixed by the sequence's length (:mod:`lightning_sanity.checks.length_features`)."""
    if not features:
        return False
    found = length_channels(target >= 0, features)
    callback._ran[CHECK].append(f"no per-position feature ({', '.join(features)}) fixed by the sequence's length")
    if not found:
        return False
    _found(callback)
    name, channel = found[0]
    where = f"batch[{name!r}]" + (f"[..., {channel}]" if features[name].dim() == 3 else "")
    callback.report(
        trainer, CHECK, "error",
        f"The per-position feature {where} is, over the real positions of the first training batch, the same in "
        "every sequence of one length and different between lengths: it is computed from the sequence's length (a "
        "progress `(t + 1) / len`, the elements still to come). In a next-element task the length is the future, so "
        "the model reads how many elements remain and when the sequence ends, which nobody knows while it runs.",
        LENGTH_ADVICE, where=where, key="length-feature",
        data={"feature": name, "channel": channel, "features": [f"{n}[{c}]" for n, c in found]},
    )
    return True


def _window_scaling(callback: Any, trainer: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    with hidden_step_watches():  # our reads of the batch are not the model's first use of its input
        kind = W.scaled_with_target(x, y)
    callback._ran[CHECK].append("inputs and targets are not scaled together per window")
    if kind is None:
        return
    _found(callback)
    callback.report(
        trainer, CHECK, "error",
        f"In every sample of the first training batch, input and target values together are exactly {kind} "
        "while the input alone is not: each window was scaled with statistics that include the values to "
        "predict, so the input's level tells the model the mean and spread of its target, which nobody knows at "
        "inference time.",
        "Scale each window with statistics of its input part only (`mu, sd = past.mean(), past.std()`, applied to "
        "the target too, as RevIN does), or with a scaler fitted on the training split.",
        where="batch scaling", key="window-scaling", data={"kind": kind, "samples": int(x.shape[0])},
    )
