"""One root cause, one piece of advice: findings that share a likely cause point at the first of them.

A learning rate far too high shows up in half the checks at once (update-ratio, exploding-gradient, dead
gradients and activations, jittering predictions, the loss trend), and each would otherwise repeat "lower the
learning rate". :func:`link_consequences` keeps the advice on the primary finding (the earliest located one, as
the symptom that shows first is the nearest to the cause) and tells the others they are likely a consequence of
it; their own advice stays in ``data["advice_alone"]``.

Example::

    >>> from lightning_sanity.findings import Finding
    >>> a = Finding("update-ratio", "warning", "Updates as large as the weights.", "Lower the learning rate.",
    ...             global_step=0)
    >>> b = Finding("loss-trend", "error", "The loss exploded.", "Lower the learning rate by 10x.")
    >>> link_consequences([b, a])
    >>> b.advice.startswith("Likely a consequence of the update-ratio finding at step 0")
    True
    >>> b.data["advice_alone"]
    'Lower the learning rate by 10x.'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lightning_sanity.findings import CHECKS, Finding, Severity

#: Causes recognised in the advice of findings: words in the advice, and how the cause is named.
CAUSES = (("learning rate", "a learning rate too high"),)


def link_consequences(findings: Iterable[Finding]) -> None:
    """Point the warnings/errors that share a cause at the earliest of them (in place)."""
    serious = [f for f in findings if f.severity in (Severity.WARNING, Severity.ERROR)]
    for words, cause in CAUSES:
        sharing = [f for f in serious if words in f.advice.lower() and "advice_alone" not in f.data]
        if len(sharing) < 2:
            continue
        primary = min(sharing, key=_located_order)
        at = f" at step {primary.global_step}" if primary.global_step is not None else ""
        for finding in sharing:
            if finding is not primary:
                _point_at(finding, primary, f"{at} (the same cause: {cause})")


def _point_at(finding: Finding, primary: Finding, why: str) -> None:
    """Make ``finding`` a likely consequence of ``primary`` (``why`` follows "the <check> finding"), keeping its own
    advice in ``data["advice_alone"]``."""
    finding.data["advice_alone"] = finding.advice
    finding.data["likely_cause"] = {"check": primary.check, "global_step": primary.global_step}
    finding.advice = (f"Likely a consequence of the {primary.check} finding{why}: act on that one first, then re-run; "
                      'this finding\'s own advice is in data["advice_alone"].')


#: Findings that follow from a model whose output does not depend on its input (``constant-output`` at fit start):
#: every layer before the collapse gets a gradient of zero (or of round-off), and the loss can only reach the
#: input-independent baseline.
COLLAPSE_CONSEQUENCES = ("vanishing-gradient", "dead-gradient")


def link_to_constant_output(findings: Iterable[Finding]) -> None:
    """Point vanishing / dead gradients and a loss flat at the baseline at a fit-start constant-output error (in
    place): one cause, the output that ignores the input, and one piece of advice."""
    findings = list(findings)
    primary = next((f for f in findings if f.check == "constant-output" and f.key == "constant"
                    and f.severity == Severity.ERROR), None)
    if primary is None:
        return
    at = f" inside `{primary.where}`" if primary.where else ""
    for finding in findings:
        if finding.severity not in (Severity.WARNING, Severity.ERROR) or "advice_alone" in finding.data:
            continue
        flat = finding.check == "loss-trend" and (finding.data.get("pattern") == "flat"
                                                   or finding.data.get("ends_at_baseline"))
        if finding.check not in COLLAPSE_CONSEQUENCES and not flat:
            continue
        _point_at(finding, primary, f" (the model's output does not depend on its input{at}, so the layers before "
                                    "it get no gradient and the loss cannot beat the input-independent baseline)")


def _located_order(finding: Finding) -> tuple[Any, ...]:
    # Located findings first, earliest step first; then the contract's order of checks.
    step = finding.global_step
    return (step is None, step if step is not None else 0, CHECKS.index(finding.check))
