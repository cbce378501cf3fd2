"""``label-distribution`` glue: constant or out-of-range labels, data sorted by label, conflicting duplicates, a
head wider than the labels, heavy imbalance with the bias that fixes it.

Mixed into :class:`~lightning_sanity.callbacks.data_checks.DataChecks`, which calls :meth:`_judge_labels` once the
first batches are read; the math is in :mod:`lightning_sanity.checks.data` and
:mod:`lightning_sanity.checks.label_use`. What the loss inspector handed over (``facts``) decides the label kind.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
import torch

from lightning_sanity.callbacks import _multi_hot_padding as MP
from lightning_sanity.checks import data as D
from lightning_sanity.checks import duplicate_labels as DL
from lightning_sanity.checks.label_use import unused_head_classes
from lightning_sanity.checks.padding_labels import report_padding_labels
from lightning_sanity.findings import Severity


class _LabelDistributionGlue:
    """The ``label-distribution`` findings of :class:`~lightning_sanity.callbacks.data_checks.DataChecks`."""

    def _label_facts(self, facts: dict[str, Any]) -> dict[str, Any]:
        """The loss inspector's figures, when its loss call compares with the batch's target (or the labels were
        read from the very part the first step's loss compared with: ``_label_index``); else nothing.

        A loss against a target the step made itself (a GAN's ``torch.ones_like(...)``, one-hot or shifted targets)
        says nothing about the batch's labels: then they are judged from the data alone.
        """
        return facts if self._labels_are_loss_target(facts) else {}

    def _labels_are_loss_target(self, facts: dict[str, Any]) -> bool:
        return facts.get("loss_target_is_batch_target") is True or getattr(self, "_label_index", None) is not None

    def _label_kind(self, facts: dict[str, Any], labels: torch.Tensor) -> str:
        kind = self._label_facts(facts).get("loss_kind")
        if kind == "cross_entropy":
            return "class" if not self._labels.floating else "soft"
        if kind == "binary_cross_entropy":
            return "binary"
        if kind in ("mse", "l1", "huber", "gaussian_likelihood", "poisson_likelihood"):
            return "regression"
        if kind == "kl_div":
            return "soft"
        if not self._labels.floating:
            return "class"
        if labels.numel() and bool(((labels == 0) | (labels == 1)).all()):
            return "binary"
        return "regression"

    def _judge_labels(self, trainer: "pl.Trainer") -> None:
        if not self._labels.values and not self._labels.ranges:
            return
        all_facts = self.collector(trainer).facts
        # A recognised loss that compares with something else: the batch's labels may be unused (a GAN's digit
        # labels), so what they look like is only worth knowing.
        unused = "loss_kind" in all_facts and not self._labels_are_loss_target(all_facts)
        facts = self._label_facts(all_facts)
        where = self._labels.field
        all_labels = torch.cat(self._labels.values) if self._labels.values else torch.zeros(0, dtype=torch.float64)
        kind = self._label_kind(facts, all_labels)
        ignore = facts.get("ignore_index", -100)
        if kind in ("class",):
            all_labels = all_labels[all_labels != ignore]
        mins = ([float(all_labels.min())] if all_labels.numel() else []) + [r[0] for r in self._labels.ranges]
        maxs = ([float(all_labels.max())] if all_labels.numel() else []) + [r[1] for r in self._labels.ranges]
        if not mins:
            return
        lo, hi = min(mins), max(maxs)
        samples = sum(int(t.numel()) for t in self._labels.values)
        batches = len(self._labels.values) + len(self._labels.ranges)
        summary = {"batches": batches, "label_min": lo, "label_max": hi, "kind": kind}

        if batches >= 2 and lo == hi and (samples >= 16 or self._labels.ranges):
            if self._judge_constant_slot(trainer, facts, kind, lo, batches, where):
                return
            # Only labels laid out like the tokens (one per position) can be the padding token.
            padding = self._labels.token_layout and self._labels.pad_id is not None and lo == self._labels.pad_id
            self.report(
                trainer, "label-distribution", Severity.INFO if unused else Severity.ERROR,
                f"Every target in the first {batches} batches equals {lo:.6g}"
                + (", the padding token (`input_ids` where `attention_mask` is 0): the label mask keeps only padding"
                   if padding else ": nothing to learn (or the data are sorted by label and not shuffled)")
                + ("; the recognised loss compares with another target, so they may be unused." if unused else "."),
                "Check how the labels are read (a constant, a wrong column) and shuffle the training data "
                "(`DataLoader(..., shuffle=True)`).",
                where=where, at_step=False, data=summary)
            self.detail(trainer, "label-distribution", f"all {batches} batches hold the single target {lo:.6g}")
            return
        if kind == "class":
            report_padding_labels(self, trainer, self._labels.padding, facts, where)
        if kind in ("regression", "soft"):
            self.detail(trainer, "label-distribution", f"{kind} targets in [{lo:.4g}, {hi:.4g}]: class checks skipped")
            return
        if kind == "binary" and (lo < 0 or hi > 1):
            self.report(
                trainer, "label-distribution", Severity.ERROR,
                f"Binary targets range from {lo:.4g} to {hi:.4g}; they must lie in [0, 1].",
                "Map the labels to 0 and 1, or use cross_entropy for more than two classes.",
                where=where, at_step=False, data=summary)
            return
        classes = facts.get("num_classes")
        if kind == "class" and classes is not None and (hi >= classes or lo < 0):
            self.report(
                trainer, "label-distribution", Severity.ERROR,
                f"Labels range from {lo:.0f} to {hi:.0f}, but the model predicts {classes} classes (0..{classes - 1}).",
                f"Widen the last layer to at least {int(hi) + 1} outputs or remap the labels to 0..C-1.",
                where=where, at_step=False, data={**summary, "num_classes": classes})
            return
        if kind == "binary":
            MP.report(self, trainer, self._labels.values, self._labels.shapes, where)
        if self._labels.dense or not self._labels.values or lo < 0:
            self.detail(trainer, "label-distribution", f"targets in [{lo:.4g}, {hi:.4g}]")
            return
        width = int(hi) + 1 if kind == "class" else 2
        if kind == "class" and (all_labels != all_labels.round()).any():
            return
        per_batch = torch.stack([D.label_counts(t[t != ignore] if kind == "class" else t.round(), width)
                                 for t in self._labels.values])
        counts = per_batch.sum(0)
        sorted_labels = D.looks_sorted(per_batch)
        if sorted_labels:
            # Batches in label order say nothing of the data set's prior: loss-trend falls back to ln C.
            all_facts["labels_sorted"] = True
        else:
            # loss-trend's baseline: the label prior over every label seen here, not one batch's.
            all_facts["label_counts"] = counts.tolist()
        ratio = D.imbalance_ratio(counts)
        present = int((counts > 0).sum())
        self.detail(trainer, "label-distribution",
                    f"{present} classes in {samples} labels; most/least frequent {ratio:.3g}")
        summary.update(classes_seen=present, counts=counts.tolist()[:100], imbalance_ratio=round(ratio, 3),
                       samples=samples)
        if sorted_labels:
            v, chi2, df = D.batch_label_association(per_batch)
            classes_per_batch = [int(c) for c in (per_batch > 0).sum(1).tolist()]
            self.report(
                trainer, "label-distribution", Severity.WARNING,
                f"The first {batches} batches hold {classes_per_batch} distinct classes each, out of {present} "
                f"seen: the training data are ordered by label, not shuffled (Cramér's V {v:.2f}).",
                "Shuffle the training data: `DataLoader(..., shuffle=True)` (or a shuffling sampler).",
                where=where, at_step=False, data={**summary, "classes_per_batch": classes_per_batch,
                                                  "cramers_v": round(v, 3)})
        self._judge_duplicates(trainer, where, samples)
        if kind == "class" and not sorted_labels:
            self._judge_head_width(trainer, facts, counts, where, summary)
        if (D.heavy_imbalance(counts, self.threshold("label-distribution", "imbalance_ratio"))
                and (kind == "binary" or width <= 100)):
            self._report_imbalance(trainer, facts, kind, counts, where, summary)

    def _judge_constant_slot(self, trainer: "pl.Trainer", facts: dict[str, Any], kind: str, label: float,
                             batches: int, where: Optional[str]) -> bool:
        """A constant class index into a group of candidates the input holds: ``input_ids`` of shape ``(B, G, T)``
        scored as ``G`` classes (a listwise reranker, multiple choice) with the positive always put first. The label
        names a slot of the input, not a class the head could learn as a bias: a model that scores every candidate
        with the same function cannot tell the slots apart, so there is something to learn. True when reported."""
        classes = facts.get("num_classes")
        if kind != "class" or not isinstance(classes, int) or classes < 2 or classes not in self._labels.groups:
            return False
        self.report(
            trainer, "label-distribution", Severity.INFO,
            f"Every target in the first {batches} batches equals {label:.6g}, and the input holds one sequence per "
            f"class ({classes} candidates per sample): the positive sits in slot {label:.6g} of each group (a "
            "grouped softmax, as in listwise reranking or multiple choice).",
            "Nothing to do when every candidate is scored by the same function (the model cannot see the slot); "
            "shuffle the candidates if the model sees their order.",
            where=where, at_step=False, data={"batches": batches, "label": label, "candidates": classes})
        self.detail(trainer, "label-distribution", f"the positive in slot {label:.6g} of {classes} candidates")
        return True

    def _judge_in_batch_target(self, trainer: "pl.Trainer") -> bool:
        """A constant target made by the step for in-batch (square) logits: every row trained towards the same
        candidate (:mod:`lightning_sanity.checks.in_batch_targets`). True when reported."""
        found = self.collector(trainer).facts.get("in_batch_constant_target")
        if not found:
            return False
        rows, target = found["rows"], found["target"]
        self.report(
            trainer, "label-distribution", Severity.ERROR,
            f"Every one of the {rows} targets of the loss is class {target}, while its logits are {rows} x {rows} "
            f"(each row scored against the batch's own {rows} candidates, as in a contrastive loss): every row is "
            f"trained to pick candidate {target}, so the representations collapse and the loss ends near "
            f"ln {rows}.",
            "For in-batch contrastive logits (InfoNCE, NT-Xent, CLIP) each row's positive is its own pair: use "
            "`labels = torch.arange(N)` (shifted for two concatenated views). A constant column 0 is right only "
            "for MoCo-style logits `[positive | queue]`, which are not square.",
            where=found.get("module"), at_step=False, data=dict(found), key="in-batch-target")
        self.detail(trainer, "label-distribution", f"in-batch targets all equal to {target} over {rows} rows")
        return True

    def _judge_duplicates(self, trainer: "pl.Trainer", where: Optional[str], samples: int) -> None:
        if not self._labels.prints or len(self._labels.prints) != len(self._labels.values):
            return
        found = DL.duplicate_labels(torch.cat(self._labels.prints), torch.cat(self._labels.values))
        if not found.groups:
            return
        share = found.involved / max(samples, 1)
        # A handful of conflicting duplicates is label noise, worth knowing; a sizeable share means the inputs and
        # labels are not paired correctly, and half or more leaves nothing consistent to learn. Inputs of a few
        # discrete features (tabular data) repeat with different outcomes by nature: only info there. So do short
        # texts (effective tokens): they count only when their labels agree no more often than chance, i.e. the
        # kept tokens say nothing about the label (truncation that keeps a shared header, a placeholder text).
        tokens = self._labels.print_tokens
        rich = not tokens and self._labels.print_features >= DL.RICH_INPUT_FEATURES
        at_chance = tokens and found.at_chance
        severity = (Severity.ERROR if share >= 0.5 and (rich or at_chance)
                    else Severity.WARNING if share >= 0.05 and ((rich and found.groups >= 2) or at_chance)
                    else Severity.INFO)
        what = "identical token inputs (the `input_ids` where `attention_mask` is 1)" if tokens else "identical inputs"
        chance = (f"; their labels agree no more often than labels drawn from the label prior ({found.agreeing} of "
                  f"{found.pairs} pairs agree, {found.chance:.0f} expected by chance), so these inputs do not hold "
                  "what decides the label" if at_chance else "")
        self.report(
            trainer, "label-distribution", severity,
            f"{found.groups} group{'s' if found.groups > 1 else ''} of {what} "
            f"{'carry' if found.groups > 1 else 'carries'} different labels ({found.involved} of {samples} samples, "
            f"{share:.0%}, the largest {found.largest}) in the first batches{chance}.",
            ("Check that the input keeps what decides the label (truncation `max_length` and side: a shared "
             "header or prompt may fill the kept tokens), and " if tokens else "Check ")
            + "that inputs and labels are paired correctly (same index, same order after any shuffle or filter); "
            "deduplicate or relabel the conflicting samples.",
            where=where, at_step=False, data={**found.as_dict(), "share": round(share, 4), "tokens": tokens})

    def _judge_head_width(self, trainer: "pl.Trainer", facts: dict[str, Any], counts: torch.Tensor,
                          where: Optional[str], summary: dict[str, Any]) -> None:
        classes = facts.get("num_classes")
        if not isinstance(classes, int) or classes > 100:
            return  # a vocabulary: tokens that never occur in a corpus are normal
        smoothing = float(facts.get("label_smoothing") or 0.0)
        unused = unused_head_classes(counts.tolist(), classes, smoothing)
        if unused is None:
            return
        cost = (f"; with label_smoothing={smoothing:g}, {unused['smoothing_mass_on_unused']:.2%} of every target's "
                "mass goes to classes that never occur, which raises the loss floor and biases the probabilities"
                if smoothing else "; the extra logits are only pushed down, so training itself works")
        self.report(
            trainer, "label-distribution", Severity.WARNING if smoothing else Severity.INFO,
            f"The head predicts {classes} classes but {unused['labels']} labels use only {unused['classes_used']} of "
            f"them ({unused['unused']} never occur: {unused['unused_classes'][:10]}){cost}.",
            f"Make the last layer as wide as the classes the labels use ({unused['classes_used']}) or check "
            "`num_classes` and the label mapping" + ("; smoothing then spreads over real classes only." if smoothing
                                                      else "."),
            where=where, at_step=False, data={**summary, **unused}, key="head-width")

    def _report_imbalance(self, trainer: "pl.Trainer", facts: dict[str, Any], kind: str, counts: torch.Tensor,
                          where: Optional[str], summary: dict[str, Any]) -> None:
        matches = facts.get("init_matches_prior")
        module = facts.get("output_module")
        bias_param = f"`{module}.bias`" if module else "the last layer's bias"
        if kind == "binary":
            rate = float(counts[1] / counts.sum())
            bias_text = f"{D.logit_bias(rate)} (log(p / (1 - p)) for a positive rate of {rate:.3g})"
            data = {**summary, "positive_rate": round(rate, 4), "best_bias": [D.logit_bias(rate)]}
        else:
            bias = D.log_prior_bias(counts)
            bias_text = f"the log class frequencies {bias[:10]}{' ...' if len(bias) > 10 else ''}"
            data = {**summary, "best_bias": bias}
        share = counts.max().item() / counts.sum().item()
        if facts.get("loss_class_weighted"):
            self.report(
                trainer, "label-distribution", Severity.INFO,
                f"The labels are imbalanced (most/least frequent {summary['imbalance_ratio']:.3g}, majority share "
                f"{share:.0%}); the loss weighs the classes, which handles it.",
                "Nothing to do; watch per-class metrics (balanced accuracy), not only accuracy.",
                where=where, at_step=False, data={**data, "loss_class_weighted": True})
            return
        if matches:
            self.report(
                trainer, "label-distribution", Severity.INFO,
                f"The labels are imbalanced (most/least frequent {summary['imbalance_ratio']:.3g}, majority share "
                f"{share:.0%}); the model's initial prediction already follows the label prior.",
                "Nothing to do; watch per-class metrics, not only accuracy.", where=where, at_step=False, data=data)
            return
        known = matches is not None
        # Most/least frequent is set by the rarest class alone. The uniform start is far from the prior when one
        # class holds most labels, or the prior as a whole is as uneven as a 1:ratio two-class split; a few rare
        # classes among many even ones (an ordinal target's tails) leave it close, and the bias is learnt at once.
        balance = D.shannon_balance(counts)
        even = D.binary_balance(self.threshold("label-distribution", "imbalance_ratio"))
        skewed = share >= 0.5 or balance <= even
        data = {**data, "shannon_balance": round(balance, 4)}
        if known and not skewed:
            self.report(
                trainer, "label-distribution", Severity.INFO,
                f"The labels are imbalanced in their rarest classes (most/least frequent "
                f"{summary['imbalance_ratio']:.3g}), but no class holds most of them (majority share {share:.0%}) and "
                f"their entropy is {balance:.0%} of an even split's ({even:.0%} for a two-class split at the "
                "imbalance ratio): the model's uniform start is close to the prior.",
                "Nothing to do; watch the rare classes' metrics.", where=where, at_step=False, data=data)
            return
        self.report(
            trainer, "label-distribution", Severity.WARNING if known else Severity.INFO,
            f"The labels are heavily imbalanced (most/least frequent {summary['imbalance_ratio']:.3g}, majority share "
            f"{share:.0%})" + (", and the model starts from a uniform prediction." if known else "."),
            f"Set {bias_param} to {bias_text} so training starts from the prior instead of spending its first "
            "steps learning it; or weight the loss by inverse class frequency, or resample.",
            where=where, at_step=False, data=data)
