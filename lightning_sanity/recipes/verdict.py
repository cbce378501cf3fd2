"""What a recipe hands back: :class:`RecipeVerdict`, the advice for each failure mode, and the written report."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Optional, Union

from lightning_sanity.findings import Finding, FindingCollector, Severity
from lightning_sanity.report import build_report, write_report

OVERFIT = "overfit-one-batch"
BASELINE = "input-independent-baseline"

_ADVICE = {
    "rises": (
        "Look for a flipped sign: a loss returned as its negative, `maximize=True` in the optimizer, a "
        "log-likelihood maximised instead of minimised, or nll_loss fed raw logits instead of log_softmax output."
    ),
    "non-finite": (
        "Lower the learning rate by 10x; look for log/sqrt/division of values that can reach zero, exp of large "
        "values, or a loss computed in half precision."
    ),
    "explodes": (
        "Lower the learning rate by 10x (or add gradient clipping); if it still spikes, look for numerically "
        "unstable operations in the loss (log of softmax computed in two steps, division by small values)."
    ),
    "oscillates": (
        "Lower the learning rate; check that inputs and labels stay paired (no shuffling, augmentation or "
        "mixing that moves one without the other) and that the labels are the ones the loss expects."
    ),
    "plateaus": (
        "Check that the optimizer holds the model's parameters and nothing detaches them; raise the learning "
        "rate; remove weight decay, dropout and other regularization for this test; check the loss function, "
        "that inputs and labels stay paired, and that the batch the model sees is the one you think."
    ),
    "slow": (
        "The loss is still going down: run more steps (`steps=`) or raise the learning rate for this test; "
        "a model that cannot fit a few dozen samples quickly may also be too small."
    ),
    "labels-differ": (
        "Check that `forward` computes what `training_step` feeds the loss, and that the loss compares the "
        "output with these labels (not with another field of the batch)."
    ),
}


@dataclasses.dataclass
class RecipeVerdict:
    """The outcome of a recipe.

    Attributes:
        recipe: ``"overfit-one-batch"`` or ``"input-independent-baseline"``.
        passed: whether the model passed.
        mode: ``"passed"``, or the failure mode (``rises``, ``non-finite``, ``explodes``, ``oscillates``,
            ``plateaus``, ``slow``, ``labels-differ`` for overfit; ``no-gap``, ``non-finite`` for the baseline).
        message: one sentence with the figures.
        advice: what to try.
        curves: the training loss at each step, per run (``{"loss": [...]}`` for overfit,
            ``{"real": [...], "zeroed": [...]}`` for the baseline).
        figures: the numbers the verdict was read from.
        findings: the findings also written to the report (contract check names, ``data["recipe"]`` set).
        report: the summary.json content.
        out_dir: the folder holding ``sanity/summary.json`` and ``summary.md``, or None when nothing was written.
    """

    recipe: str
    passed: bool
    mode: str
    message: str
    advice: str
    curves: dict[str, list[float]]
    figures: dict[str, Any]
    findings: list[Finding]
    report: dict[str, Any]
    out_dir: Optional[Path] = None

    @property
    def losses(self) -> list[float]:
        """The main loss curve: the overfit run's, or the real-input run's for the baseline."""
        return self.curves.get("loss", self.curves.get("real", []))

    def __str__(self) -> str:
        head = f"{self.recipe}: {'PASS' if self.passed else 'FAIL'}" + ("" if self.passed else f" ({self.mode})")
        lines = [head, f"  {self.message}"]
        for name, curve in self.curves.items():
            if curve:
                label = "loss" if name == "loss" else f"{name} loss"
                lines.append(f"  {label}: {_sparkline_figures(curve)}")
        if not self.passed and self.advice:
            lines.append(f"  Try: {self.advice}")
        others = [f for f in self.findings if f.check != "loss-trend" or f.severity is not Severity.INFO]
        for f in others:
            if f.message != self.message:
                lines.append(f"  [{f.severity.value}] {f.check}: {f.message}")
        if self.out_dir is not None:
            lines.append(f"  Report: {Path(self.out_dir) / 'sanity' / 'summary.md'}")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _sparkline_figures(curve: list[float]) -> str:
    n = len(curve)
    picks = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1})
    return "  ".join(f"step {i}: {_fmt(curve[i])}" for i in picks if 0 <= i < n)


def _finish(recipe: str, seed: int, findings: list[Finding], checks: tuple[str, ...], detail: str,
            out_dir: Optional[Union[str, Path]]) -> tuple[dict[str, Any], Optional[Path]]:
    collector = FindingCollector(seed=seed)
    collector.enable(*checks)
    for finding in findings:
        collector.add(finding)
    collector.detail("loss-trend", detail)
    report = build_report(collector)
    written = None
    if out_dir is not None:
        write_report(report, out_dir)
        written = Path(out_dir)
    return report, written
