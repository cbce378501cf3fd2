"""Where the suite's time goes in one run of an ``overhead.py`` workload: milliseconds per callback and hook.

Usage::

    python benchmarks/breakdown.py cnn short            # workload (mlp, cnn, transformer, lm) and plan
    python benchmarks/breakdown.py mlp long --wall      # wall time instead of the main thread's CPU time

Every Lightning hook of the suite's callbacks is wrapped once and its time summed per callback and hook. The
default clock is the main thread's CPU time (``time.thread_time``), which other jobs on a shared machine disturb
far less than wall time; the figures add what the wrappers cost themselves (about a microsecond a call), so
compare runs of this script with each other, and ``overhead.py`` for what users pay.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import overhead  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=overhead.WORKLOADS)
    parser.add_argument("plan", choices=("long", "short"))
    parser.add_argument("--wall", action="store_true", help="wall time instead of the main thread's CPU time")
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.thread_time
    spent: dict[tuple[str, str], float] = collections.defaultdict(float)
    calls: collections.Counter = collections.Counter()

    def wrap(fn, key):
        @functools.wraps(fn)
        def hook(self, *a, **k):
            start = clock()
            try:
                return fn(self, *a, **k)
            finally:
                spent[key] += clock() - start
                calls[key] += 1
        return hook

    suite_callbacks = overhead._callbacks

    def callbacks(config: str) -> list:
        out = suite_callbacks(config)
        for cb in out:
            cls = type(cb)
            for name in overhead_hooks():
                fn = getattr(cls, name, None)
                if fn is not None and not getattr(fn, "__breakdown__", False):
                    wrapped = wrap(fn, (cls.__name__, name))
                    wrapped.__breakdown__ = True
                    setattr(cls, name, wrapped)
        return out

    overhead._callbacks = callbacks
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        overhead.worker(args.workload, args.plan, "suite", overhead.STEPS[args.workload], 1, out.name)
        run = json.loads(Path(out.name).read_text())
    print(f"{args.workload} {args.plan}: fit {run['seconds']:.3f} s wall, {run['cpu_seconds']:.3f} s CPU, suite's "
          f"own share {run['suite_share']}")
    per_callback: dict[str, float] = collections.defaultdict(float)
    for (cls, _), seconds in spent.items():
        per_callback[cls] += seconds
    for cls, seconds in sorted(per_callback.items(), key=lambda kv: -kv[1]):
        hooks = sorted(((h, s, calls[(c, h)]) for (c, h), s in spent.items() if c == cls), key=lambda x: -x[1])[:4]
        print(f"{cls:22s} {1000 * seconds:7.1f} ms  " + ", ".join(f"{h} {1000 * s:.1f}/{n}" for h, s, n in hooks))
    print(f"total inside the suite's hooks: {1000 * sum(spent.values()):.1f} ms")


def overhead_hooks() -> list[str]:
    from lightning_sanity.cost import HOOKS

    return sorted(HOOKS)


if __name__ == "__main__":
    main()
