"""The norm monitor's ``dead-gradient`` verdicts on the layers: cut off, exactly zero, died, unrouted, cancelled,
under no_grad, unconsumed, never called (a part of :class:`~lightning_sanity.callbacks.norm_verdicts.NormVerdicts`).

Its facts: the host history's per-layer counts (:func:`lightning_sanity.checks.norms.dead_layers`) and the gradient
probe's one watched batch (:mod:`~lightning_sanity.callbacks.gradient_probe`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning_sanity.callbacks._param_zero import report_dead_parameters
from lightning_sanity.checks import layers as LM
from lightning_sanity.checks import norms as N
from lightning_sanity.checks.dead_params import (
    CACHED_ADVICE,
    CANCELLED_ADVICE,
    IDLE_GROUP_ADVICE,
    NO_GRAD_ADVICE,
    constant_tensors,
    default_init_tensors,
    idle_groups,
    last_block_side_output,
    member_signatures,
    unrouted_members,
)
from lightning_sanity.checks.naming import common_module, short_list
from lightning_sanity.findings import Severity

if TYPE_CHECKING:
    import lightning.pytorch as pl


class DeadVerdicts:
    """The dead-gradient half of the norm monitor's verdicts."""

    def _conclude_dead(self, trainer: "pl.Trainer", steps: int) -> None:
        if "dead-gradient" not in self.active_checks:
            return
        names, counts = self.layers.names, self._history.counts
        dead = N.dead_layers(counts)
        if self._flags.sharded:
            dead["missing"] = []
        observed = [i for i in range(len(names)) if counts.observed[i] >= N.MIN_STEPS]
        cut_off = [i for i in dead["missing"] if self._probe.ran.get(names[i])]
        # Ran, nothing read its output, and it is the last block's hand-over to a next block that does not exist
        # (N-BEATS's last backcast): dead code by design, info. Outputs dropped in every block stay a warning.
        any_dead = {i for kind in dead.values() for i in kind}
        alive = [names[i] for i in observed if i not in any_dead]
        unconsumed = [i for i in cut_off if self._probe.unconsumed(names[i]) and last_block_side_output(names[i], alive)]
        cut = [i for i in cut_off if i not in unconsumed]
        no_grad_mode = [i for i in dead["missing"] if names[i] in self._probe.ran and not self._probe.ran[names[i]]]
        unused = [i for i in dead["missing"] if names[i] not in self._probe.ran]
        broken = set(cut_off) | set(dead["zero"]) | set(dead["died"])
        everything = bool(observed) and broken >= set(observed)
        meta = self._history.first_meta
        if everything:
            kinds = sorted({k for k, v in dead.items() if v and k != "missing"} | ({"missing"} if cut_off else set()))
            self._report(
                trainer, "dead-gradient", Severity.ERROR,
                f"Every trainable layer ({len(observed)}) got a zero or missing gradient on every step over "
                f"{steps} steps: nothing in the model is learning.",
                "Check the loss: a weight of 0 on the loss, a loss computed from detached tensors or from "
                "non-differentiable ops (round, argmax, comparisons, .item()), or an all-zero initialisation.",
                where=None, meta=meta, data={"layers": [names[i] for i in observed], "kinds": kinds, "steps": steps},
            )
            return
        if cut:
            self._report_layers(
                trainer, cut, Severity.WARNING, meta,
                "ran in the forward pass but never received a gradient (grad is None) over {steps} steps: "
                "{its} output does not reach the loss through differentiable ops",
                "Look for .detach(), .item(), .numpy(), torch.no_grad() or integer ops such as argmax between "
                "these layers and the loss; if they are meant to stay fixed, set requires_grad_(False).",
                steps, kind="missing")
        # Exactly zero because their branch's value cancels to zero for every sample (pool(x) - x on a 1x1 map):
        # a branch that computes nothing at this input size, not a broken graph (callbacks/_cancel_watch.py).
        cancelled = [i for i in dead["zero"] if self._probe.cancelled(names[i])]
        zero = [i for i in dead["zero"] if i not in cancelled]
        if zero:
            self._report_layers(
                trainer, zero, Severity.WARNING, meta,
                "got an exactly zero gradient on every step over {steps} steps",
                "Look for ops with zero derivative between these layers and the loss (torch.round, floor, sign, "
                "clamp that is always active), a loss term multiplied by 0, an all-zero initialisation, or "
                "ReLUs after them that are always off (see dead-activations).",
                steps, kind="zero")
        if cancelled:
            self._report_layers(
                trainer, cancelled, Severity.INFO, meta,
                "got an exactly zero gradient on every step over {steps} steps because the branch {its} output feeds, "
                "or {its} input, is exactly zero for every sample (terms that cancel, e.g. `pool(x) - x` on a 1x1 "
                "feature map, where a stride-1 pool is the identity): the branch computes nothing at this input size",
                CANCELLED_ADVICE, steps, kind="cancelled")
        unrouted = unrouted_members(dead["died"], any_dead,
                                    [n if i in observed else "" for i, n in enumerate(names)],
                                    member_signatures(trainer.lightning_module)) if dead["died"] else []
        died = [i for i in dead["died"] if i not in unrouted]
        if unrouted:  # checks/dead_params.py: data-dependent routing, not a broken gradient path
            since = self._died_meta(unrouted, meta)
            self._report_layers(
                trainer, unrouted, Severity.INFO, since,
                f"learned at first, then got no gradient from step {since[0]} to the end of the run, while identical "
                "sibling modules of the same container kept learning: the data no longer reach {them} (a "
                "mixture-of-experts router that stopped choosing some experts)",
                "If these are experts, raise the load-balancing loss weight, add router noise or a capacity limit, "
                "or re-initialise unused experts; if every sample should reach them, look for the mask or index "
                "that leaves them out.", steps, kind="unrouted")
        if died:
            died_meta = self._died_meta(died, meta)
            self._report_layers(
                trainer, died, Severity.WARNING, died_meta,
                "learned at first, then got zero or missing gradients on every step from step "
                f"{died_meta[0]} to the end of the run",
                "Units may have died after a large update: lower the learning rate, use LeakyReLU/GELU, and "
                "check dead-activations.", steps, kind="died")
        # Under no_grad, feeding layers that learn, and never trained: an encoder cut from the loss by a no_grad
        # meant for inference. A frozen pretrained extractor holds no constructor fill nor an untouched default
        # draw; a teacher feeds no parameter.
        feeding, untrained = self._untrained_features(trainer, no_grad_mode, alive)
        if untrained:
            consumers = sorted({c for i in feeding for c in self._probe.fed[names[i]] if c in alive})
            self._report_layers(
                trainer, feeding, Severity.WARNING, meta,
                "{are} trainable and in the optimizer but runs only under torch.no_grad() in training, so no gradient "
                "reaches {them} over {steps} steps, while {its} output feeds layers that learn ("
                + short_list([f"`{c}`" for c in consumers], limit=3) + ") and {its} weights are still at their "
                "initialisation (" + short_list([f"`{n}`" for n in untrained], limit=3)
                + (" is" if len(untrained) == 1 else " are") + " as constructed: one constant value, or PyTorch's "
                "default uniform draw with every value inside its bound): the model learns on top of random features",
                NO_GRAD_ADVICE, steps, kind="no_grad", extra={"feeds": consumers, "untrained": untrained})
            no_grad_mode = [i for i in no_grad_mode if i not in feeding]
        # Never called in training_step, but run under no_grad in train mode between steps (a catalogue cached in
        # on_train_epoch_start that every step scores against), and never trained: the cache holds random features.
        cached = [i for i in unused if self._probe.late.get(names[i]) is False]
        untrained = self._untrained(trainer, cached) if cached else []
        if untrained:
            self._report_layers(
                trainer, cached, Severity.WARNING, meta,
                "{are} trainable and in the optimizer but never called in training_step; {they_were} run only under "
                "torch.no_grad() between steps (a cache built in a hook such as on_train_epoch_start, which "
                "training_step then reads), so no gradient reaches {them} over {steps} steps and {its} weights are "
                "still at their initialisation (" + short_list([f"`{n}`" for n in untrained], limit=3)
                + (" is" if len(untrained) == 1 else " are") + " as constructed): the steps learn against random "
                "features", CACHED_ADVICE, steps, kind="no_grad", extra={"cached": True, "untrained": untrained})
            unused = [i for i in unused if i not in cached]
        # A parameter group of their own with an lr above 0: the user meant exactly these layers to learn (an
        # "unfrozen" top block whose output training_step reads from a cache built before training).
        idle, groups = self._idle_group_layers(trainer, unused + no_grad_mode)
        if idle:
            where = ", ".join(f"optimizers[{o}].param_groups[{g}] at lr {lr:.3g}" for o, g, lr in groups)
            self._report_layers(
                trainer, idle, Severity.WARNING, meta,
                "{are} trainable and make up a parameter group of {its} own with a learning rate above 0 (" + where
                + "), but never ran with autograd in training_step (never called there, or only under "
                "torch.no_grad()), so no gradient ever reaches {them} over {steps} steps: the layers set up to "
                "learn never change", IDLE_GROUP_ADVICE, steps, kind="idle_group",
                extra={"groups": [{"optimizer": o, "group": g, "lr": lr} for o, g, lr in groups]})
            unused = [i for i in unused if i not in idle]
            no_grad_mode = [i for i in no_grad_mode if i not in idle]
        if no_grad_mode:
            self._report_layers(
                trainer, no_grad_mode, Severity.INFO, meta,
                "{are} trainable and in the optimizer but runs only under torch.no_grad() in training",
                "If it is meant to stay fixed, set requires_grad_(False) and leave it out of the optimizer "
                "(weight decay still changes it otherwise).", steps, kind="no_grad")
        if unconsumed:
            self._report_layers(
                trainer, unconsumed, Severity.INFO, meta,
                "ran in training_step but nothing used {its} output, so no gradient ever reaches {them} over "
                "{steps} steps (wasted compute; DDP needs find_unused_parameters=True)",
                "If the output is not needed (e.g. the last block's backcast in N-BEATS), skip computing it or "
                "freeze the layer; if it was meant to feed the loss, add it there.", steps, kind="unconsumed")
        if unused:
            self._report_layers(
                trainer, unused, Severity.INFO, meta,
                "{are} trainable and in the optimizer but {were} never called in training_step, so no gradient ever reaches {them}",
                "If it is used only in validation or not at all, freeze it or leave it out of the optimizer.",
                steps, kind="unused")
        report_dead_parameters(self, trainer, dead, meta, bool(broken) or bool(untrained) or bool(idle))  # a tensor dead inside a live layer

    def _untrained_features(self, trainer, no_grad_mode: list[int], alive: list[str]) -> tuple[list[int], list[str]]:
        """Of the layers that ran only under no_grad, those whose output fed a layer that learns, and their
        tensors still as constructed: a constant fill, or PyTorch's default uniform init (none: the layers may be
        a trained, frozen extractor)."""
        names = self.layers.names
        feeding = [i for i in no_grad_mode if self._probe.fed.get(names[i], set()) & set(alive)]
        if not feeding:
            return [], []
        return feeding, self._untrained(trainer, feeding)

    def _untrained(self, trainer, layers: list[int]) -> list[str]:
        """The trainable tensors of ``layers`` still as constructed: a constant fill or PyTorch's default draw."""
        names = self.layers.names
        modules = dict(trainer.lightning_module.named_modules())
        named = []
        for i in layers:
            module = modules.get("" if names[i] == LM.ROOT else names[i])
            if module is not None:
                prefix = "" if names[i] == LM.ROOT else names[i] + "."
                named += [(prefix + n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        return constant_tensors(named) + default_init_tensors(named)

    def _idle_group_layers(self, trainer, candidates: list[int]) -> tuple[list[int], list[tuple[int, int, float]]]:
        """The candidate layers that alone make up an optimizer group with an lr above 0, and those groups."""
        if not candidates:
            return [], []
        param_layer, table, where = self.layers.param_layer, [], []
        for o, optimizer in enumerate(trainer.optimizers):
            for g, group in enumerate(optimizer.param_groups):
                # The larger of the base and the current lr: a schedule that ends at 0 was still meant to train.
                lr = max(float(group.get("lr") or 0.0), float(group.get("initial_lr") or 0.0))
                table.append((lr, [param_layer.get(id(p)) for p in group["params"] if p.requires_grad]))
                where.append((o, g, lr))
        hits = idle_groups(table, candidates)
        return sorted({i for h in hits for i in table[h][1]}), [where[h] for h in hits]

    def _died_meta(self, layers: list[int], meta):
        """Where the gradients of ``layers`` died (the earliest of them), not the first step of the run."""
        since = self._history.counts.dead_since
        since = since[layers] if since is not None else None
        if since is None or not bool((since[:, 0] >= 0).all()):
            return meta
        step, epoch, batch_idx = since[int(since[:, 0].argmin())].tolist()
        return (step, epoch, batch_idx if batch_idx >= 0 else None)

    def _report_layers(self, trainer, layers: list[int], severity, meta, what: str, advice: str, steps: int, kind: str,
                       extra: dict | None = None) -> None:
        names = [self.layers.names[i] for i in layers]
        if len(names) == 1:
            subject, what = f"Layer `{names[0]}`", what.replace("{are}", "is").replace("{were}", "was").replace("{they_were}", "it was").replace("{them}", "it").replace("{its}", "its")
        else:
            subject = f"{len(names)} layers ({short_list(names)})"
            what = what.replace("{are}", "are").replace("{were}", "were").replace("{they_were}", "they were").replace("{them}", "them").replace("{its}", "their").replace("runs", "run")
        self._report(
            trainer, "dead-gradient", severity, f"{subject} {what.format(steps=steps)}.", advice,
            where=common_module(names) if len(names) > 1 else names[0], meta=meta,
            data={"layers": names, "kind": kind, "steps": steps, **(extra or {})},
        )
