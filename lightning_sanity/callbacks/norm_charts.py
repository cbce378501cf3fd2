"""The norm monitor's TensorBoard side: its scalars, histograms and custom-scalars charts.

Tags (see :class:`~lightning_sanity.callbacks.norms.NormMonitor` for what each means): ``sanity/grad_norm/<layer>``,
``sanity/weight_norm/<layer>``, ``sanity/update_ratio/<layer>``, ``sanity/grad_norm/global``,
``sanity/weight_norm/global``, and the histograms ``sanity/grad_hist/<layer>``, ``sanity/weight_hist/<layer>``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lightning_sanity import tensorboard
from lightning_sanity.callbacks._norm_rows import any_layers
from lightning_sanity.checks import layers as LM

#: One custom-scalars chart per quantity, a line per layer (or group).
_CHARTS = (
    ("grad_norm", "gradient L2 norm per layer (pre-clip)"),
    ("weight_norm", "weight L2 norm per layer"),
    ("update_ratio", "update ratio ||dw||/||w|| per layer"),
)


def add_norm_charts(trainer: Any) -> None:
    """The "CUSTOM SCALARS" charts of category ``sanity: norms``."""
    for quantity, title in _CHARTS:
        tensorboard.add_layout_chart(trainer, "sanity: norms", title, tensorboard.tag(quantity, ".*"))


def write_histograms(trainer: Any, layers: LM.LayerMap, params: list, layer_of: list[int], grads: list) -> None:
    """Weight and gradient histograms per layer group (``norms_histogram_every_n_steps``)."""
    writers = tensorboard.writers(trainer)
    if not writers:
        return
    by_group: dict[int, tuple[list, list]] = {}
    for p, g, layer in zip(params, grads, layer_of):
        weights, gradients = by_group.setdefault(layers.group_of[layer], ([], []))
        weights.append(p.detach().flatten().float())
        if g is not None and not g.is_sparse:
            gradients.append(g.flatten().float())
    for group, (weights, gradients) in by_group.items():
        name = layers.groups[group]
        for writer in writers:
            writer.add_histogram(tensorboard.tag("weight_hist", name), torch.cat(weights).cpu(), trainer.global_step)
            if gradients:
                writer.add_histogram(tensorboard.tag("grad_hist", name), torch.cat(gradients).cpu(), trainer.global_step)


def log_norms(trainer: Any, layers: LM.LayerMap, grad_sq: torch.Tensor, weight_sq: torch.Tensor,
              update_sq: torch.Tensor, present: torch.Tensor, row: Any) -> None:
    """The scalars of one step (``row``, a :class:`~lightning_sanity.callbacks.norm_meter.StepRow`), per group.

    The rows are host tensors already (the meter's read): summed per group in Python floats (float64, as the
    rows), which costs less than a dozen small tensor ops per chart point.
    """
    G = len(layers.groups)
    group_of = layers.group_of
    grad, weight, update = grad_sq.tolist(), weight_sq.tolist(), update_sq.tolist()
    group_grad, group_weight, group_present = [0.0] * G, [0.0] * G, [0] * G
    for g, gs, ws, has in zip(group_of, grad, weight, present.tolist()):
        group_grad[g] += gs
        group_weight[g] += ws
        group_present[g] += has
    metrics: dict[str, float] = {tensorboard.tag("grad_norm", "global"): math.sqrt(sum(grad))}
    if not math.isnan(sum(weight)):  # NaN: a layer not read yet (callbacks/norm_history.py), not charted as zero
        metrics[tensorboard.tag("weight_norm", "global")] = math.sqrt(sum(weight))
    for g, name in enumerate(layers.groups):
        if not math.isnan(group_weight[g]):
            metrics[tensorboard.tag("weight_norm", name)] = math.sqrt(group_weight[g])
        if group_present[g] > 0:
            metrics[tensorboard.tag("grad_norm", name)] = math.sqrt(group_grad[g])
    if row.update_valid is not None:
        upd, base = [0.0] * G, [0.0] * G
        for g, us, ws, measured in zip(group_of, update, weight, row.update_valid.tolist()):
            if measured:
                upd[g] += us
                base[g] += ws
        for g, name in enumerate(layers.groups):
            if base[g] > 0:
                metrics[tensorboard.tag("update_ratio", name)] = math.sqrt(upd[g] / base[g])
    tensorboard.log_scalars(trainer, metrics, step=row.step)


def log_last(trainer: Any, layers: LM.LayerMap, meter: Any, history: Any) -> None:
    """A chart point between two reads of ``meter`` (a :class:`~lightning_sanity.callbacks.norm_meter.NormMeter`):
    the scalars of its last buffered row, read alone; the weights it did not read are carried from ``history``'s
    latest reading (a :class:`~lightning_sanity.callbacks.norm_history.NormHistory`), not charted as zero."""
    last = meter.read_last()
    if last is None or not trainer.is_global_zero:
        return
    data, row = last
    L = len(layers)
    weight_sq = history.chart_row(data[L:2 * L], row.weighed)
    log_norms(trainer, layers, data[:L], weight_sq, data[2 * L:], any_layers(row.patterns, "has_grad", L), row)
