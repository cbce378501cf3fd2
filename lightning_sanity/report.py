"""The sanity summary: ``summary.json`` (schema 1), ``summary.md`` and the terminal table; ``load_report``.

Example::

    >>> from lightning_sanity.findings import FindingCollector, Finding
    >>> c = FindingCollector(seed=7)
    >>> c.enable("initial-loss")
    >>> report = build_report(c)
    >>> report["status"], report["seed"], report["checks"][0]
    ('pass', 7, {'name': 'initial-loss', 'status': 'pass', 'detail': ''})
"""

from __future__ import annotations

import io
import json
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from lightning_sanity.findings import CHECKS, FindingCollector

if TYPE_CHECKING:
    import lightning.pytorch as pl

SCHEMA = 1
SANITY_DIR = "sanity"
_STATUS_MARK = {"pass": "pass", "warn": "WARN", "fail": "FAIL", "skipped": "skipped"}
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}
#: The sanity folder each Trainer's report went to, so ``load_report(trainer)`` finds it wherever it was written.
_WRITTEN_FOR: "weakref.WeakKeyDictionary[Any, Path]" = weakref.WeakKeyDictionary()
#: The last sanity folder written in this process, for ``load_report(None)``.
_LAST_WRITTEN: Optional[Path] = None

NO_SEED_NOTE = (
    "No global seed was set, so this run cannot be replayed exactly. "
    "Call `lightning.seed_everything(42, workers=True)` before building the model and data."
)


def build_report(collector: FindingCollector, cost: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """The contract's summary.json content for one collector; ``cost`` (the suite's own time) is added when
    measured: ``{"suite_seconds", "fit_seconds", "share"}``."""
    report = {
        "schema": SCHEMA,
        "seed": collector.seed,
        "status": collector.status,
        "checks": [
            {"name": name, "status": collector.check_status(name), "detail": collector.check_detail(name)}
            for name in CHECKS
        ],
        "findings": [f.to_dict() for f in collector.findings],
    }
    if cost is not None:
        report["cost"] = dict(cost)
    return report


def _where_when(finding: dict[str, Any]) -> str:
    parts = []
    if finding.get("where"):
        parts.append(f"`{finding['where']}`")
    if finding.get("global_step") is not None:
        parts.append(f"epoch {finding['epoch']}, batch {finding['batch_idx']}, step {finding['global_step']}")
    count = finding.get("data", {}).get("count")
    if count:
        parts.append(f"{count} times")
    return "; ".join(parts)


def _notes(report: dict[str, Any], ended: Optional[str]) -> list[str]:
    notes = []
    if ended:
        notes.append(f"Training ended early: {ended}. This summary covers the run up to that point.")
    if report.get("seed") is None:
        notes.append(NO_SEED_NOTE)
    else:
        notes.append(f"Global seed: {report['seed']}.")
    cost = report.get("cost")
    if cost:
        notes.append(f"The suite's own cost: {cost['suite_seconds']:.2f} s of this {cost['fit_seconds']:.1f} s fit "
                     f"({100 * cost['share']:.1f} %).")
    return notes


def render_markdown(report: dict[str, Any], ended: Optional[str] = None) -> str:
    """``summary.md``: the checks table, then every finding with its advice."""
    out = [f"# Sanity summary: {report['status'].upper()}", ""]
    out += [f"- {note}" for note in _notes(report, ended)]
    out += ["", "| check | status | detail |", "|---|---|---|"]
    for check in report["checks"]:
        detail = str(check.get("detail", "")).replace("|", "\\|")
        out.append(f"| {check['name']} | {_STATUS_MARK[check['status']]} | {detail} |")
    findings = report["findings"]
    out += ["", f"## Findings ({len(findings)})", ""]
    if not findings:
        out.append("Nothing to report.")
    for f in findings:
        where = _where_when(f)
        silenced = f.get("data", {}).get("silenced")
        tag = f"{f['severity']}, silenced {silenced}" if silenced else f["severity"]
        out.append(f"- **{f['check']}** ({tag}){' — ' + where if where else ''}: {f['message']}")
        if f.get("advice"):
            out.append(f"  - Try: {f['advice']}")
        if f.get("replay"):
            out.append(f"  - Replay bundle: `{f['replay']}`")
    return "\n".join(out) + "\n"


def render_text(report: dict[str, Any], ended: Optional[str] = None, width: int = 110) -> str:
    """The terminal form of the summary, as a string (rich tables, no colour codes)."""
    return _render_rich(report, ended, width, color=False)


def print_report(report: dict[str, Any], ended: Optional[str] = None) -> None:
    """Print the summary to the terminal, in colour where the terminal supports it."""
    from rich.console import Console

    Console(soft_wrap=False).print(_rich_renderables(report, ended), end="")


def _render_rich(report: dict[str, Any], ended: Optional[str], width: int, color: bool) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None if not color else "auto", force_terminal=False)
    console.print(_rich_renderables(report, ended))
    return buffer.getvalue()


def _rich_renderables(report: dict[str, Any], ended: Optional[str]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    title = Text.assemble("Sanity summary: ", (report["status"].upper(), _STATUS_STYLE[report["status"]]))
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in report["checks"]:
        status = check["status"]
        table.add_row(check["name"], Text(_STATUS_MARK[status], style=_STATUS_STYLE[status]), check.get("detail", ""))
    parts: list[Any] = [table]
    for f in report["findings"]:
        where = _where_when(f).replace("`", "")
        head = Text.assemble((f"[{f['severity']}] ", _SEVERITY_STYLE[f["severity"]]), (f["check"], "bold"))
        if where:
            head.append(f" ({where})")
        silenced = f.get("data", {}).get("silenced")
        if silenced:
            head.append(f" silenced {silenced}", style="dim")
        parts.append(head)
        parts.append(Text("  " + f["message"]))
        if f.get("advice"):
            parts.append(Text("  Try: " + f["advice"], style="italic"))
        if f.get("replay"):
            parts.append(Text("  Replay bundle: " + f["replay"]))
    for note in _notes(report, ended):
        parts.append(Text(note.replace("`", ""), style="dim"))
    return Group(*parts)


def write_report(report: dict[str, Any], log_dir: Union[str, Path], ended: Optional[str] = None) -> Path:
    """Write ``summary.json`` and ``summary.md`` under ``<log_dir>/sanity``; returns that folder."""
    folder = Path(log_dir) / SANITY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "summary.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    os.replace(tmp, folder / "summary.json")
    (folder / "summary.md").write_text(render_markdown(report, ended))
    global _LAST_WRITTEN
    _LAST_WRITTEN = folder.resolve()
    return folder


def remember_report(trainer: Any, folder: Path) -> None:
    """Note where ``trainer``'s report went, for ``load_report(trainer)``."""
    _WRITTEN_FOR[trainer] = Path(folder).resolve()


def _json_default(value: Any) -> Any:
    # Findings may carry numpy or torch scalars in ``data``; write them as plain numbers.
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def load_report(path: Union[str, os.PathLike, "pl.Trainer", None]) -> dict[str, Any]:
    """Read a run's ``summary.json`` back as a dict.

    Args:
        path: the run's ``trainer.log_dir``, its ``sanity`` folder, the ``summary.json`` file itself, or the
            ``Trainer``. ``None`` (what ``trainer.log_dir`` is with ``fast_dev_run=True``, whose logger has no
            folder) reads the report this process wrote last, which is where the suite put it
            (``trainer.default_root_dir``).

    Raises:
        FileNotFoundError: no summary.json there.
        ValueError: ``path`` is not a path, a Trainer or None; ``None`` before any report was written; the file
            is not JSON, or not a lightning_sanity report of schema 1.

    Example::

        >>> import lightning as L, lightning_sanity
        >>> trainer = L.Trainer(fast_dev_run=True, callbacks=lightning_sanity.default_callbacks())
        >>> # trainer.fit(model) ... then any of:
        >>> # load_report(trainer.log_dir); load_report(trainer); load_report("lightning_logs/version_0")
    """
    path = _report_location(path)
    candidates = [path, path / "summary.json", path / SANITY_DIR / "summary.json"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"`load_report` found no summary.json at {str(path)!r} (looked in {', '.join(map(str, candidates[1:]))}). "
            "Pass the run's `trainer.log_dir` after a fit that had `lightning_sanity.default_callbacks()`."
        )
    try:
        report = json.loads(found.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"`load_report`: {found} is not valid JSON ({err}).") from None
    if not isinstance(report, dict) or "schema" not in report or "findings" not in report:
        raise ValueError(f"`load_report`: {found} is not a lightning_sanity summary (no `schema`/`findings` keys).")
    if report["schema"] != SCHEMA:
        raise ValueError(
            f"`load_report`: {found} has schema {report['schema']!r}; this version of lightning_sanity reads "
            f"schema {SCHEMA}. Upgrade lightning_sanity to read it."
        )
    return report


def _report_location(path: Any) -> Path:
    if path is None:
        if _LAST_WRITTEN is None:
            raise ValueError(
                "`load_report` got None and no report was written in this process yet. `trainer.log_dir` is None "
                "with `fast_dev_run=True` or a logger without a folder: pass the Trainer itself, "
                "`load_report(trainer)`, or its `trainer.default_root_dir`."
            )
        return _LAST_WRITTEN
    if hasattr(path, "default_root_dir") and hasattr(path, "log_dir"):  # a Trainer
        written = _WRITTEN_FOR.get(path)
        return written if written is not None else Path(path.log_dir or path.default_root_dir)
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"`load_report` takes a run's `trainer.log_dir` (a path), its Trainer, or None; got {type(path).__name__} "
            f"{path!r}."
        )
    return Path(path)
