"""The norm monitor's verdicts: when to call the pure judgements of :mod:`lightning_sanity.checks.norms` on the
host history, and the findings they make (messages, advice, data), for ``dead-gradient``,
``vanishing-gradient``, ``exploding-gradient``, ``weight-growth`` and ``update-ratio``.

:class:`NormVerdicts` is a part of :class:`~lightning_sanity.callbacks.norms.NormMonitor` (a mixin): it reads
the monitor's host-side state (``_history``, ``_spikes``, ``_probe``) and reports through it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import torch

from lightning_sanity.callbacks._dead_verdicts import DeadVerdicts
from lightning_sanity.callbacks.norm_meter import StepRow
from lightning_sanity.checks import norms as N
from lightning_sanity.checks.accumulation import accumulating_message, find_accumulating
from lightning_sanity.checks.first_step import first_step_spike
from lightning_sanity.checks.init_scale import beyond_init_scale, default_init_norms
from lightning_sanity.checks.naming import common_module, short_list
from lightning_sanity.checks.slow_updates import slow_updates, slow_words
from lightning_sanity.checks.update_blowup import blown_up_layers
from lightning_sanity.checks.weight_drift import settling_layers, steady_growth
from lightning_sanity.findings import Severity

if TYPE_CHECKING:
    import lightning.pytorch as pl


class NormVerdicts(DeadVerdicts):
    """The judging half of the norm monitor (see the module docstring); dead-gradient's in :mod:`._dead_verdicts`."""

    def _judge_spikes(self, trainer: "pl.Trainer", grad_sq: torch.Tensor, meta: list[StepRow]) -> None:
        """The global gradient norm of each buffered step against the running history before it.

        "10x above the level before" is measured against the first steps (``N.SPIKE_EARLY``), not against every
        step before: an explosion that ramps up over a few steps (x5 per step) would otherwise always sit
        within 10x of its own previous step. A spike within the first ``N.SPIKE_WARMUP`` steps has no running
        median yet: it is kept as a candidate and judged at the end against the whole run's median.
        """
        values = grad_sq.sum(dim=1).sqrt().tolist()
        watching = "exploding-gradient" in self.active_checks and ("exploding-gradient", "spike") not in self._reported
        recent = self._spikes.recent
        for i, value in enumerate(values):
            if not math.isfinite(value):
                continue
            seen = self._spikes.seen
            reference = self._spikes.early_max if seen >= N.SPIKE_EARLY else self._spikes.max
            if watching and (seen == 0 or value >= N.SPIKE_OVER_MAX * reference):
                if seen < N.SPIKE_WARMUP:
                    if self._spikes.early_spike is None or value > self._spikes.early_spike[0]:
                        self._spikes.early_spike = (value, grad_sq[i].clone(), meta[i])
                else:
                    factor = N.gradient_spike(torch.tensor(recent[-200:], dtype=torch.float64), value,
                                              factor=self.threshold("exploding-gradient", "spike"),
                                              reference=reference)
                    if factor is not None:
                        watching = False
                        self._report_spike(trainer, grad_sq[i], meta[i], value, factor)
            recent.append(value)
            self._spikes.seen += 1
            self._spikes.max = max(self._spikes.max, value)
            if seen < N.SPIKE_EARLY:
                self._spikes.early_max = max(self._spikes.early_max, value)
        self._spikes.recent = recent[-200:]

    def _judge_early_spike(self, trainer: "pl.Trainer", norms: torch.Tensor) -> None:
        """A spike within the first steps, judged against the median of the whole run."""
        if self._spikes.early_spike is None or ("exploding-gradient", "spike") in self._reported:
            return
        if "exploding-gradient" not in self.active_checks or norms.numel() < 2 * N.SPIKE_WARMUP:
            return
        value, layer_sq, row = self._spikes.early_spike
        median = N.median_finite(norms)
        factor = self.threshold("exploding-gradient", "spike")
        history = self._history
        if history.first_meta is not None and row.step == history.first_meta[0]:
            # No step before the first: judged by what its update did to the weights (checks/first_step.py).
            i = next((k for k, m in enumerate(history.upd_meta) if m[0] == row.step), None)
            valid = history.upd_valid[i] if i is not None else None
            found = i is not None and first_step_spike(
                value, median, history.upd_sq[i][valid], history.filled(history.upd_weight[i])[valid],
                factor, self.threshold("update-ratio", "too_large"))
            if found:
                self._report_spike(trainer, layer_sq, row, value, found["factor"], found["update_ratio"])
        elif median > 0 and value >= factor * median:
            self._report_spike(trainer, layer_sq, row, value, value / median)

    def _report_spike(self, trainer: "pl.Trainer", layer_sq: torch.Tensor, row: StepRow, value: float,
                      factor: float, first_update: Optional[float] = None) -> None:
        median = value / factor
        layer, layer_value = self._spiking_layer(layer_sq)
        self._reported.add(("exploding-gradient", "spike"))
        clip = trainer.gradient_clip_val if self._flags.automatic else None
        message = (f"The global gradient norm jumped to {value:.3g}, {factor:.3g}x its running median of "
                   f"{median:.3g}; the largest part is in `{layer}` (gradient norm {layer_value:.3g}).")
        if first_update is not None:
            message += (f" It was the first step, and its update moved the weights by {first_update:.3g}x their own "
                        "norm.")
        if clip:
            # Norms are read before clipping: the step itself was bounded, which is what clipping is for.
            message += (f" Gradient clipping (gradient_clip_val={clip}) bounded the update: norms are read before "
                        "clipping.")
        iterating = next((type(o).__name__ for o in trainer.optimizers if N.iterates_within_step(o)), None)
        if iterating:
            message += (f" {iterating} runs several iterations in each step (`max_iter`): the other steps' "
                        "gradients are read where it converged, so a jump above their median is its method.")
        self._report(
            trainer, "exploding-gradient", Severity.INFO if clip or iterating else Severity.WARNING, message,
            "Lower the learning rate or add warm-up, clip gradients (Trainer(gradient_clip_val=1.0)), check "
            "the initialisation scale and the loss for divisions by small numbers, and add normalisation "
            "layers or weight decay.",
            where=layer, meta=(row.step, row.epoch, row.batch_idx),
            data={"kind": "spike", "grad_norm": value, "running_median": median, "factor": factor,
                  "layer_grad_norm": layer_value, "clipped": bool(clip), "iterating_optimizer": iterating,
                  **({"first_step_update_ratio": first_update} if first_update is not None else {})},
        )

    def _spiking_layer(self, layer_sq: torch.Tensor) -> tuple[str, float]:
        norms = layer_sq.sqrt()
        norms = torch.where(torch.isfinite(norms), norms, torch.zeros_like(norms))
        layer = int(norms.argmax())
        return self.layers.names[layer], norms[layer].item()

    def _default_norms(self, trainer: "pl.Trainer") -> torch.Tensor:
        """Each layer's norm under its default initialisation (checks/init_scale.py)."""
        return default_init_norms(trainer.lightning_module, self.layers.names, self.layers.numels)

    def _conclude_vanishing(self, trainer, grad_sq, weight_sq, present) -> set[int]:
        if "vanishing-gradient" not in self.active_checks:
            return set()
        eligible = torch.tensor([k == "matrix" for k in self.layers.kinds])
        found = N.vanishing_layers(grad_sq, weight_sq, self.layers.numels, eligible, present,
                                   rms_limit=self.threshold("vanishing-gradient", "rms"),
                                   relative_limit=self.threshold("vanishing-gradient", "relative"))
        if not found:
            return set()
        names = [self.layers.names[i] for i, _, _ in found]
        gap = max(g for _, g, _ in found)
        rms = max(r for _, _, r in found)
        rel = N.relative_gradients(grad_sq, weight_sq)
        ref_layer = int(torch.nan_to_num(rel, nan=-1.0).median(dim=0).values.argmax())
        self._report(
            trainer, "vanishing-gradient", Severity.WARNING,
            f"Gradients vanish in {len(names)} layer(s) ({short_list(names)}): RMS gradient at most {rms:.2g} "
            f"and ||grad||/||weight|| at most {gap:.2g} times that of `{self.layers.names[ref_layer]}`, on most steps.",
            "Use ReLU/GELU instead of sigmoid/tanh in hidden layers, He/Kaiming or Xavier initialisation, "
            "normalisation layers (BatchNorm/LayerNorm) or residual connections, and normalised inputs.",
            where=common_module(names) if len(names) > 1 else names[0], meta=self._history.first_meta,
            data={"layers": names, "relative_gap": gap, "rms_grad": rms, "reference_layer": self.layers.names[ref_layer]},
        )
        return {i for i, _, _ in found}

    def _conclude_growth(self, trainer, grad_sq) -> None:
        if "exploding-gradient" not in self.active_checks or ("exploding-gradient", "spike") in self._reported:
            return
        norms = grad_sq.sum(1).sqrt()
        piling = self._resets and find_accumulating(self._resets, grad_sq, [m[0] for m in self._history.meta],
                                                    {k: v.owned for k, v in self._meter.views.items()},
                                                    trainer.optimizers)
        if piling:
            message, advice = accumulating_message(piling)
            self._report(trainer, "exploding-gradient", Severity.WARNING, message, advice, where=None,
                         meta=self._history.first_meta, data={"kind": "accumulating", **piling})
            return
        factor = N.sustained_growth(norms, factor=self.threshold("exploding-gradient", "growth"))
        if factor is None:
            return
        last = N.median_finite(norms[-max(4, norms.shape[0] // 8):])
        per_layer = grad_sq.sqrt()
        growth = per_layer[-1] / per_layer[: max(1, per_layer.shape[0] // 8)].median(dim=0).values
        layer = int(torch.nan_to_num(growth, nan=0.0, posinf=0.0).argmax())
        self._report(
            trainer, "exploding-gradient", Severity.WARNING,
            f"The global gradient norm grew {factor:.3g}x over the run to about {last:.3g} and is still rising; "
            f"`{self.layers.names[layer]}` grew the most.",
            "Lower the learning rate, clip gradients (Trainer(gradient_clip_val=1.0)), add weight decay or "
            "normalisation layers, and check the initialisation scale.",
            where=self.layers.names[layer], meta=self._history.meta[-1],
            data={"kind": "growth", "factor": factor, "grad_norm": last},
        )

    def _conclude_weights(self, trainer, weight_sq, present) -> None:
        if "weight-growth" not in self.active_checks:
            return
        steps = [m[0] for m in self._history.meta] if len(self._history.meta) == weight_sq.shape[0] else None
        # Each layer judged over its own run, from its first gradient: an optimizer moves no weights before it (a
        # generator stepped every few batches, a backbone unfrozen late), and that flat stretch is no growth pace.
        starts = torch.where(present.any(0), present.int().argmax(0), 0).tolist()
        found, settled = [], set()
        for s in sorted(set(starts)):
            own = [i for i, start in enumerate(starts) if start == s]
            since = steps[s:] if steps else None
            grown = N.growing_layers(weight_sq[s:], self.layers.numels, steps=since,
                                     factor=self.threshold("weight-growth", "factor"))
            grown = [(i, f) for i, f in grown if i in own]
            if grown:  # grown from near zero to an ordinary scale for the layer's shape is learning, not divergence
                grown = beyond_init_scale(grown, weight_sq[s:], self._default_norms(trainer),
                                          self.threshold("weight-growth", "factor"))
            if grown:  # grown gradually and slowing down: settling, not diverging (checks/weight_drift.py)
                settled |= settling_layers(weight_sq[s:], [i for i, _ in grown], since)
            found += grown
        found = [(i, f) for i, f in found if i not in settled]
        steady = not found and steady_growth(weight_sq, self.layers.numels, steps=steps)  # checks/weight_drift.py
        found = found or steady
        if not found:
            return
        found.sort(key=lambda item: -item[1])
        names = [self.layers.names[i] for i, _ in found]
        layer, factor = found[0]
        first = math.sqrt(weight_sq[0, layer].item())
        last = math.sqrt(weight_sq[-1, layer].item())
        self._report(
            trainer, "weight-growth", Severity.WARNING,
            f"Weight norms keep growing in {len(names)} layer(s) ({short_list(names)}): `{names[0]}` went from "
            f"{first:.3g} to {last:.3g} ({factor:.3g}x" + ("" if math.isclose(factor * first, last, rel_tol=1e-3) else
                                                          " its default-initialisation scale") + ") and is still rising"
            + (", as fast in the second half of the run as in the first (healthy weights grow mostly early, then "
               "settle)." if steady else "."),
            "Add or increase weight decay (AdamW), lower the learning rate, check that the loss cannot be lowered "
            "by scaling weights up (an unbounded term), and consider normalisation layers.",
            where=common_module(names) if len(names) > 1 else names[0], meta=self._history.meta[-1],
            data={"layers": names, "factor": factor, "first_norm": first, "last_norm": last,
                  "kind": "steady" if steady else "factor"},
        )

    def _conclude_updates(self, trainer, exclude: set[int]) -> None:
        if "update-ratio" not in self.active_checks:
            return
        if not self._history.upd_sq:
            if self.update_ratio:
                self.skip(trainer, "update-ratio", "no update was measured")
            else:
                self.skip(trainer, "update-ratio", "switched off (norms_update_ratio=False)")
            return
        history = self._history
        upd, valid = torch.stack(history.upd_sq), torch.stack(history.upd_valid)
        weight = history.filled(torch.stack(history.upd_weight))  # from each layer's first reading, not zero
        valid &= torch.tensor([k == "matrix" for k in self.layers.kinds]).unsqueeze(0)
        # each layer's weights before its first update: its first reading (a layer stepped late is not zero-started)
        zero_start = history.filled(history.weight[0][0]) == 0 if history.weight else None
        too_large = self.threshold("update-ratio", "too_large")
        verdicts = N.update_ratio_verdicts(upd, weight, valid, too_large=too_large,
                                           too_small=self.threshold("update-ratio", "too_small"), zero_start=zero_start)
        blown = not verdicts["too_large"] and blown_up_layers(  # checks/update_blowup.py: one step, weights blown up
            upd, weight, valid, self._default_norms(trainer), too_large=too_large, zero_start=zero_start)
        if blown:
            verdicts["too_large"] = blown
        ratios = (upd.sqrt() / weight.sqrt())[valid]
        if ratios.numel():
            median = N.median_finite(ratios)
            self.detail(trainer, "update-ratio", f"median ||dw||/||w|| {median:.2g} over {upd.shape[0]} measurements")
            self.collector(trainer).facts["update_ratio_median"] = {"median": median, "measurements": upd.shape[0]}
        for kind, found in verdicts.items():
            groups: list = []
            # Layers whose gradients vanish do not move either; vanishing-gradient names the cause.
            found = [(i, r) for i, r in found if i not in exclude]
            if not found:
                continue
            names = [self.layers.names[i] for i, _ in found]
            ratio = max(r for _, r in found) if kind == "too_large" else min(r for _, r in found)
            if kind == "too_large":
                message = (f"Updates as large as the weights themselves in {len(names)} layer(s) "
                           f"({short_list(names)}): ||dw||/||w|| reached {ratio:.3g} on several steps "
                           "(healthy: about 1e-3).")
                if blown:
                    message = (f"Updates larger than the weights themselves in {len(names)} layer(s) "
                               f"({short_list(names)}): ||dw||/||w|| reached {ratio:.3g}, and the weights blew up to "
                               f"more than {N.WEIGHT_GROWTH_FACTOR:g}x their initial scale, after which the ratio "
                               "looks ordinary only because the weights are huge (healthy: about 1e-3).")
                advice = ("Lower the learning rate by 10-100x (try a learning-rate finder), add warm-up, and clip "
                          "gradients; check that the loss is averaged, not summed, over a large batch.")
            else:
                message = (f"The weights practically do not move in {len(names)} layer(s) ({short_list(names)}): "
                           f"median ||dw||/||w|| is {ratio:.3g} although gradients are non-zero (healthy: about 1e-3).")
                advice = ("Raise the learning rate (it may be off by orders of magnitude, e.g. 1e-10 instead of "
                          "1e-3), and check the scheduler and any parameter group with a tiny learning rate.")
                layers = {i for i, _ in found}
                # groups whose lr is still 0 at the end (a warm-up from 0 is not one)
                zero = [(n, m) for n, m, group in self._meter.zero_lr_groups.values() if group.get("lr") == 0]
                groups = [(name, sorted(layers & set(members))) for name, members in zero]
                groups = [(name, members) for name, members in groups if members]
                if groups:
                    said = "; ".join(f"{name} (layers {short_list([self.layers.names[i] for i in members])})"
                                     for name, members in groups)
                    message += f" Their learning rate is 0: {said}."
                    advice = ("Give the group a non-zero lr; if the layers are meant to stay frozen, set "
                              "requires_grad_(False) on them (no gradients to compute either).")
            rows = [i for i in range(len(self._history.upd_meta)) if valid[i].any()]
            self._report(
                trainer, "update-ratio", Severity.WARNING, message, advice,
                where=common_module(names) if len(names) > 1 else names[0],
                meta=self._history.upd_meta[rows[0]] if rows else self._history.first_meta,
                data={"kind": kind, "layers": names, "ratio": ratio, "measurements": upd.shape[0],
                      **({"zero_lr_groups": [name for name, _ in groups]} if kind == "too_small" else {})},
            )

    def conclude_after(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # After loss-trend concluded: weights that barely move and a loss that ended the planned run at the baseline.
        if not trainer.is_global_zero or "update-ratio" not in self.active_checks:
            return
        facts = self.collector(trainer).facts
        data = slow_updates(facts)
        if data is None or any(f.check == "update-ratio" for f in self.collector(trainer).findings):
            return
        self._report(trainer, "update-ratio", Severity.WARNING, *slow_words(data), where=None,
                     meta=self._history.first_meta, data=data)
