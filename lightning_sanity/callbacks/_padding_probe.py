"""``batch-mixing`` by padding: does a sample's output change when its batch is padded further?

Batches padded to their longest sequence (a collate's dynamic padding, HF's ``DataCollatorWithPadding``) give each
sample as many padding positions as the longest sequence of its batch leaves it. A model that reads them (a GRU
classified from ``out[:, -1]`` of a right-padded batch, pooling or attention that ignores the ``attention_mask``)
predicts each sample from its batchmates' lengths: no gradient flows between samples, and moving another sample's
values changes nothing, so the other ``batch-mixing`` probes cannot see it. This probe appends padding positions to
every per-position tensor of the flow run's call (the padding value each one already holds where the mask is 0) and
runs the model once more under ``no_grad`` at the forward-value probe's seed: outputs at the samples' real
positions must not move from that probe's unmoved output.

Only where the batch says it is padded to its longest: a right-aligned 0/1 ``attention_mask`` (or
``padding_mask``) whose last position is real in some sample and padding in another. A fixed-length padding never
changes between batches and is left alone.

Usage (inside the flow checks, the model already in eval mode, inside ``isolate_rng()``)::

    found = padding_probe(run, batch)   # None: not a padded batch, or nothing to compare
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import nn

from lightning_sanity.batch import map_tensors
from lightning_sanity.callbacks._forward_mixing import _SEED, _buffers_kept
from lightning_sanity.checks import flow
from lightning_sanity.replays.rng import seed_global

#: the batch keys of a padding mask (1 at real positions), in the order they are looked for.
MASK_KEYS = ("attention_mask", "padding_mask", "mask")
#: padding positions appended.
EXTRA = 4
#: a change of an output beyond this share of the outputs' spread is a dependence that matters: float round-off is
#: about 1e-6 of it; a per-channel GroupNorm over the padded waveform (wav2vec2's first layer) moves outputs by 3e-3.
TOLERANCE = 1e-2


def right_padding_mask(batch: Any) -> Optional[torch.Tensor]:
    """The ``(B, T)`` real positions of a batch padded on the right to its longest sample, or None.

    >>> import torch
    >>> right_padding_mask({"attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}).tolist()
    [[True, True, True], [True, True, False]]
    >>> right_padding_mask({"attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]])}) is None  # fixed length
    True
    """
    if not isinstance(batch, Mapping):
        return None
    for key in MASK_KEYS:
        mask = batch.get(key)
        if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[1] < 2:
            continue
        if mask.is_floating_point() or mask.dtype == torch.bool or bool(((mask == 0) | (mask == 1)).all()):
            real = mask != 0
            # Right-aligned: no real position after a padding one; the last position real somewhere, padding elsewhere.
            if bool((real[:, 1:] <= real[:, :-1]).all()) and bool(real[:, -1].any()) and not bool(real[:, -1].all()):
                return real
    return None


def _padded(t: torch.Tensor, real: torch.Tensor) -> Optional[torch.Tensor]:
    """``t`` (``(B, T, ...)``) with :data:`EXTRA` positions more, holding its value at padding positions; None when
    it holds no single value there."""
    values = t[~real]
    if values.numel() == 0:
        return None
    values = values.reshape(values.shape[0], -1)
    fill = values[0]
    if not bool((values == fill).all()):
        return None
    extra = fill.reshape(t.shape[2:]).expand(t.shape[0], EXTRA, *t.shape[2:])
    return torch.cat([t, extra.to(t.dtype)], 1)


def padding_probe(run: Any, batch: Any) -> Optional[dict[str, Any]]:
    """Compare the flow run's seeded output (``run.seeded_output``, from the forward-value probe) with the output
    of the same call padded by :data:`EXTRA` more positions; ``batch`` is the whole first batch (the run may hold
    its first samples only)."""
    real = right_padding_mask(batch)
    # forward_probe's unmoved forward, kept only when two calls agreed: the same call at the same seed.
    base = getattr(run, "seeded_output", None)
    if real is None or real.shape[0] < run.size or base is None:
        return None
    real = real[: run.size]
    width = int(real.shape[1])
    extended: list[bool] = []

    def pad(t: torch.Tensor) -> torch.Tensor:
        if t.dim() < 2 or t.shape[0] != run.size or t.shape[1] != width:
            return t
        out = _padded(t, real.to(t.device))
        if out is None:
            raise _NoFill()
        extended.append(True)
        return out

    try:
        args, kwargs = map_tensors(run.args, pad), map_tensors(run.kwargs, pad)
    except _NoFill:
        return None
    if not extended:
        return None
    with _buffers_kept(run.model), torch.no_grad():  # buffers an eval forward updates (a cache, a counter) put back
        seed_global(_SEED)  # the caller's isolate_rng() puts the global RNG back
        padded = flow.first_output_tensor(run.fn(args, kwargs), run.size)
    if padded is None:
        return None
    if padded.shape == base.shape:
        rows_base, rows_padded, keep = base, padded, None
    elif base.dim() >= 2 and padded.shape[1] == width + EXTRA and padded.shape[2:] == base.shape[2:] \
            and base.shape[1] == width:
        rows_base, rows_padded, keep = base, padded[:, :width], real.to(base.device)
    else:
        return None
    change = (rows_padded.float() - rows_base.float()).abs()
    if keep is not None:  # per position: the real positions only
        change = change.reshape(run.size, width, -1).amax(-1).masked_fill(~keep, 0.0)
    change = change.reshape(run.size, -1).amax(-1)
    spread = float(rows_base.float().std()) if rows_base.numel() > 1 else 0.0
    scale = max(spread, float(rows_base.float().abs().mean()), 1e-6)
    moved = change > TOLERANCE * scale
    return {"moved": int(moved.sum()), "samples": run.size, "change": float(change.max()) / scale,
            "width": width, "extra": EXTRA, "per_position": keep is not None or base.dim() >= 3}


class _NoFill(Exception):
    """A per-position tensor holds no single padding value."""


def judge_padding(callback: Any, trainer: Any, run: Any) -> None:
    """After the other ``batch-mixing`` probes found nothing: a warning when padding the batch further moves the
    per-sample outputs of two samples or more, else a note in the check's detail."""
    from lightning_sanity.findings import Severity

    check = "batch-mixing"
    collector = callback.collector(trainer)
    if any(f.check == check for f in collector.findings):
        return

    def note(text: str) -> None:  # after the other probes' figures
        collector.detail(check, f"{collector.details.get(check, '')}; {text}".lstrip("; "))

    try:
        found = padding_probe(run, run.batch)
    except Exception as err:  # the other probes' verdict stands; this one only adds to it
        note(f"padding not probed ({err!r})")
        return
    if found is None:
        return
    # A bidirectional RNN run unpacked reads the padding backwards into every real position, and per-position
    # outputs (a tagger, a decoder whose attention masks the padded memory) meet the padding through their context
    # only: a common design whose cost is a matter of degree. A note, not a warning. A one-way RNN's real positions
    # never see trailing padding: a per-sample output that moves read a padding position itself (`out[:, -1]`).
    backwards = any(isinstance(m, nn.RNNBase) and m.bidirectional for m in run.model.modules())
    if found["moved"] < 2 or found["per_position"] or backwards:
        kind = " per-position" if found["per_position"] else ""
        why = " (a bidirectional RNN reads the padding backwards)" if backwards else ""
        note(f"{found['extra']} more padding positions move {found['moved']} of {found['samples']}{kind} outputs{why}")
        return
    callback.report(
        trainer, check, Severity.WARNING,
        f"Each sample's output depends on how far its batch is padded: with {found['extra']} more padding positions "
        f"(as a batch holding a longer sequence would have) the outputs of {found['moved']} of {found['samples']} "
        f"samples move, by up to {found['change']:.2g} of their spread, at their real positions, in eval mode. The "
        "batches are padded to their longest sequence, so every prediction depends on the lengths of the other "
        "sequences in its batch, and the same sequence is scored differently alone or in another batch.",
        "Let the mask decide what the model reads: take the last real step (`out[torch.arange(B), "
        "attention_mask.sum(1) - 1]`, or `pack_padded_sequence` for RNNs), pool over real positions only "
        "(`(h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)`), and pass the padding mask to attention "
        "(`key_padding_mask`, `attention_mask`).",
        key="padding", data={**found, "called_as": run.how},
    )
