"""Detection benchmark: the suite on a zoo of realistic healthy and buggy Lightning training scripts.

Usage::

    python benchmarks/detection.py                 # every scenario, one at a time
    python benchmarks/detection.py -j 2            # two scenarios at once
    python benchmarks/detection.py --only bug_softmax_before_ce --details
    python benchmarks/detection.py --split heldout --json heldout.json
    python benchmarks/detection.py --zoo benchmarks/third_party    # real HuggingFace models (pip install transformers)
    python benchmarks/detection.py --healthy --seed-offset 7 -j 2   # false alarms under other seeds

Each file in ``benchmarks/zoo/`` is a small, self-contained training script as a user would write it: a
LightningModule on real data bundled with scikit-learn (digits, diabetes, breast cancer, iris, wine) or on
synthetic data from a seeded ``torch.Generator``, trained for a few epochs on CPU with
``Trainer(callbacks=lightning_sanity.default_callbacks())`` after ``seed_everything``. Its module constant
``EXPECT`` is ``None`` for a healthy run, or the set of check names that would correctly describe its bug. The
script prints ``LOG_DIR=<trainer.log_dir>`` at the end.

The runner starts every script in its own subprocess, in a fresh temporary directory, reads the run's
``summary.json`` with ``lightning_sanity.load_report`` and compares the checks with a warning or error finding
with ``EXPECT``:

- healthy-clean: healthy, no warning or error;
- FALSE ALARM: healthy, at least one warning or error;
- detected: buggy, at least one expected check among the warnings/errors;
- wrong check: buggy, warnings/errors, but none from an expected check;
- missed: buggy, no warning or error at all;
- CRASHED: no report could be read (the script's stderr tail is shown).

Each subprocess runs with ``OMP_NUM_THREADS=1`` unless the variable is already set (use ``-j`` for parallelism).

Totals: detection rate (detected / buggy) and false-alarm rate (false alarms / healthy).

``--seed-offset N`` runs each script with ``seed_everything(seed + N)`` in place of its own seed (other
initialisations and shuffles, the same data): a verdict that holds only at the seed the script was written with
is a threshold on its edge. A script that seeds through ``torch.manual_seed`` alone keeps its seed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ZOO = Path(__file__).resolve().parent / "zoo"
REPO = ZOO.parents[1]
SERIOUS = ("warning", "error")


@dataclass
class Outcome:
    name: str
    expect: Optional[frozenset]
    split: str = "tune"
    found: set = field(default_factory=set)
    findings: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    verdict: str = ""
    seconds: float = 0.0
    error: str = ""


def scenarios(zoo: Path = ZOO) -> dict[str, Path]:
    return {p.stem: p for p in sorted(zoo.glob("*.py")) if not p.name.startswith("_")}


#: ``third-party`` marks ``benchmarks/third_party/`` (real HuggingFace models; needs ``transformers``).
SPLITS = ("tune", "heldout", "heldout2", "heldout3", "heldout4", "heldout5", "heldout6", "heldout7", "heldout8",
          "heldout9", "heldout10", "heldout11", "heldout12", "heldout13", "heldout14", "heldout15", "heldout16",
          "heldout17", "heldout18", "heldout19", "heldout20", "heldout21", "heldout22", "heldout23", "heldout24",
          "heldout25", "heldout26", "heldout27", "heldout28", "heldout29", "heldout30",
          "heldout31", "heldout32", "heldout33", "heldout34", "heldout35", "third-party")
_MISSING = object()


def read_constant(path: Path, name: str, default=_MISSING):
    """A module-level constant of the script, read without importing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    if default is _MISSING:
        raise ValueError(f"{path.name} has no {name} constant")
    return default


def read_expect(path: Path) -> Optional[frozenset]:
    """The script's ``EXPECT`` constant, read without importing it."""
    value = read_constant(path, "EXPECT")
    return None if value is None else frozenset(value)


def read_split(path: Path) -> str:
    """The script's ``SPLIT`` constant (``"tune"`` when absent)."""
    value = read_constant(path, "SPLIT", "tune")
    if value not in SPLITS:
        raise ValueError(f"{path.name}: SPLIT must be one of {SPLITS}, got {value!r}")
    return value


def find_log_dir(stdout: str, workdir: Path) -> Optional[Path]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("LOG_DIR="):
            return workdir / line[len("LOG_DIR="):].strip()
    # The script died before printing: the suite still writes its summary at a crash.
    found = sorted(workdir.rglob("sanity/summary.json"))
    return found[-1].parent.parent if found else None


#: runs a scenario with every ``seed_everything(seed)`` shifted by argv[1] (argv[2] is the script).
_SHIFTED = """
import os, runpy, sys
import lightning.fabric.utilities.seed as seed
offset, script = int(sys.argv[1]), sys.argv[2]
original = seed.seed_everything
def shifted(seed_value=None, *args, **kwargs):
    return original(None if seed_value is None else seed_value + offset, *args, **kwargs)
import lightning, lightning.pytorch, lightning.fabric
for module in (seed, lightning, lightning.pytorch, lightning.fabric):
    module.seed_everything = shifted
sys.argv = [script]
sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python script.py` has it: helpers beside the script
runpy.run_path(script, run_name="__main__")
"""


def run_one(name: str, path: Path, timeout: float, seed_offset: int = 0) -> Outcome:
    from lightning_sanity import load_report

    out = Outcome(name, read_expect(path), read_split(path))
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    # One intra-op thread per scenario: on a busy machine PyTorch's OpenMP threads spin against each other and a
    # tiny Transformer step takes seconds instead of milliseconds. Parallelism comes from -j instead.
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix=f"zoo_{name}_") as tmp:
        start = time.perf_counter()
        try:
            cmd = [sys.executable, "-c", _SHIFTED, str(seed_offset), str(path)] if seed_offset else [
                sys.executable, str(path)]
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as err:
            stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            stderr = f"timed out after {timeout:.0f} s"
        out.seconds = time.perf_counter() - start
        log_dir = find_log_dir(stdout, Path(tmp))
        try:
            report = load_report(log_dir) if log_dir is not None else None
        except Exception as err:  # noqa: BLE001 - a broken report is a result, not a crash of the benchmark
            report, stderr = None, f"{stderr}\nload_report failed: {err!r}"
        if report is None:
            out.verdict, out.error = "CRASHED", "\n".join(stderr.strip().splitlines()[-8:])
            return out
    out.findings = [f for f in report["findings"] if f["severity"] in SERIOUS]
    out.checks = report.get("checks", [])
    out.found = {f["check"] for f in out.findings}
    if out.expect is None:
        out.verdict = "FALSE ALARM" if out.found else "healthy-clean"
    elif out.found & out.expect:
        out.verdict = "detected"
    else:
        out.verdict = "wrong check" if out.found else "missed"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this scenario (file stem; repeatable; a substring matches too)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="scenarios run at once (default 1)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per scenario (default 300)")
    parser.add_argument("--details", action="store_true",
                        help="print the warning/error findings of every false alarm, wrong check and miss")
    parser.add_argument("--split", choices=SPLITS, help="run only this half of the zoo (default: both)")
    parser.add_argument("--json", metavar="PATH", help="also write the outcomes as JSON")
    parser.add_argument("--healthy", action="store_true", help="run only the healthy scenarios")
    parser.add_argument("--seed-offset", type=int, default=0, metavar="N",
                        help="shift every seed_everything(seed) to seed + N (default 0: the scripts' own seeds)")
    parser.add_argument("--zoo", type=Path, default=ZOO,
                        help="folder of scenarios (default benchmarks/zoo; benchmarks/third_party needs transformers)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"-j must be >= 1, got {args.jobs}")

    args.zoo = args.zoo.resolve()
    todo = scenarios(args.zoo)
    if args.only:
        todo = {n: p for n, p in todo.items() if any(o == n or o in n for o in args.only)}
        if not todo:
            parser.error(f"no scenario matches {args.only}; known: {', '.join(scenarios(args.zoo))}")
    if args.split:
        todo = {n: p for n, p in todo.items() if read_split(p) == args.split}
        if not todo:
            parser.error(f"no scenario of split {args.split!r} is selected")

    if args.healthy:
        todo = {n: p for n, p in todo.items() if read_expect(p) is None}

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {n: pool.submit(run_one, n, p, args.timeout, args.seed_offset) for n, p in todo.items()}
        outcomes = []
        for n, fut in futures.items():
            o = fut.result()
            outcomes.append(o)
            print(f"  {o.verdict:<13} {o.name} ({o.seconds:.0f} s)", file=sys.stderr, flush=True)

    rows = [(o.name, "healthy" if o.expect is None else ", ".join(sorted(o.expect)),
             ", ".join(sorted(o.found)) or "-", o.verdict) for o in outcomes]
    header = ("scenario", "expected", "warning/error checks found", "verdict")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3]  # noqa: E731
    print(line(header))
    print("-" * (sum(widths) + 6 + 13))
    for r in rows:
        print(line(r))

    count = lambda group, verdict: sum(o.verdict == verdict for o in group)  # noqa: E731
    for split in SPLITS:
        group = [o for o in outcomes if o.split == split]
        if not group:
            continue
        healthy = [o for o in group if o.expect is None]
        buggy = [o for o in group if o.expect is not None]
        print(f"\n{split} split: {len(group)} scenarios ({len(buggy)} buggy, {len(healthy)} healthy)")
        if buggy:
            d = count(buggy, "detected")
            print(f"  detection rate: {d}/{len(buggy)} = {d / len(buggy):.0%}  (wrong check"
                  f" {count(buggy, 'wrong check')}, missed {count(buggy, 'missed')}, crashed {count(buggy, 'CRASHED')})")
        if healthy:
            fa = count(healthy, "FALSE ALARM")
            print(f"  false-alarm rate: {fa}/{len(healthy)} = {fa / len(healthy):.0%}"
                  f"  (crashed {count(healthy, 'CRASHED')})")

    if args.details:
        for o in outcomes:
            if o.verdict in ("healthy-clean", "detected"):
                continue
            print(f"\n== {o.name}: {o.verdict}")
            if o.error:
                print(o.error)
            for f in o.findings:
                print(f"  [{f['severity']}] {f['check']} ({f.get('where')}): {f['message']}")
    if args.json:
        Path(args.json).write_text(json.dumps([
            {"name": o.name, "split": o.split, "expect": None if o.expect is None else sorted(o.expect),
             "found": sorted(o.found),
             "verdict": o.verdict, "seconds": round(o.seconds, 1), "error": o.error,
             "findings": o.findings, "checks": o.checks} for o in outcomes], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
