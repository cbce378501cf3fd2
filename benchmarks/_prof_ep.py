"""Where the suite's time goes: per callback hook, per step phase, and (optionally) cProfile's top functions.

Usage::

    python benchmarks/profile_suite.py mlp short              # seconds per (callback, hook), one fit
    python benchmarks/profile_suite.py lm long --cprofile 25  # plus cProfile's 25 costliest suite functions

Runs one ``trainer.fit`` of a workload of ``benchmarks/overhead.py`` (same model, data, plan and Trainer) with
the suite, on one CPU thread. Every hook of the suite's callbacks is wrapped with a clock on its class
(inclusive time, calls, and the time of the first training batch apart from the rest, which separates the
fit-start work from the per-step cost). The wrapper costs about a microsecond per call, so the per-step
figures are slightly high; the summary's own clock (``cost`` in summary.json) is printed beside them.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead  # noqa: E402  (benchmarks/overhead.py: the workloads)

#: CPU time of this thread (the training loop): on a machine shared with other jobs it moves far less than wall time.
CLOCK = time.thread_time


def _wrap(callbacks: list, table: dict, phase: list) -> None:
    # On the classes, not the instances: a check's ``revive()`` drops instance attributes at the start of a fit.
    from lightning_sanity.cost import HOOKS

    for cls in {type(cb) for cb in callbacks}:
        for name in HOOKS:
            fn = getattr(cls, name, None)
            if not callable(fn):
                continue

            def hook(*args: Any, __fn=fn, __key=(cls.__name__, name), **kwargs: Any) -> Any:
                start = CLOCK()
                try:
                    return __fn(*args, **kwargs)
                finally:
                    took = CLOCK() - start
                    row = table[(__key, phase[0])]
                    row[0] += took
                    row[1] += 1
                    row[2].append(took)

            setattr(cls, name, hook)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=(*overhead.WORKLOADS, "mlp35m"))
    parser.add_argument("plan", choices=("long", "short"))
    parser.add_argument("--steps", type=int, default=None, help="steps (default: the benchmark's)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also print cProfile's top N")
    parser.add_argument("--top", type=int, default=25, help="rows of the per-hook table (default 25)")
    args = parser.parse_args()

    import lightning as L
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    import lightning_sanity

    torch.set_num_threads(1)
    steps = args.steps or overhead.STEPS[args.workload]
    table: dict = collections.defaultdict(lambda: [0.0, 0, []])
    phase = ["start"]  # "start" until the first training batch ends, then "steps", then "end"

    class Phase(L.Callback):
        def on_train_batch_end(self, trainer: Any, *a: Any) -> None:
            phase[0] = "ep0" if trainer.current_epoch == 0 else "ep1"
            if args.plan == "long" and trainer.global_step >= steps:
                trainer.should_stop = True

        def on_train_end(self, *a: Any) -> None:
            phase[0] = "end"

    import tempfile
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    L.seed_everything(0, verbose=False)
    model, train, val = overhead._models()(args.workload, steps, recipe=False)
    suite = lightning_sanity.default_callbacks(print_summary=False)
    _wrap(suite, table, phase)
    with tempfile.TemporaryDirectory() as root:
        planned = dict(max_epochs=100) if args.plan == "long" else dict(max_steps=steps, max_epochs=2)
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=TensorBoardLogger(root, name="bench"),
                            log_every_n_steps=50, limit_val_batches=4, enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False, default_root_dir=root,
                            callbacks=[*suite, Phase()], **planned)
        profiler = cProfile.Profile() if args.cprofile else None
        start, cpu = time.perf_counter(), CLOCK()
        if profiler:
            profiler.enable()
        trainer.fit(model, train, val)
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - start, CLOCK() - cpu
    report = suite[-1].last_report or {}
    print(f"{args.workload} {args.plan}: {trainer.global_step} steps, fit {wall:.3f} s wall, {cpu:.3f} s CPU; summary's cost: "
          f"{report.get('cost')}")
    total = {p: sum(v[0] for (k, ph), v in table.items() if ph == p) for p in ("start", "ep0", "ep1", "end")}
    print("hook time by phase: " + ", ".join(f"{p} {s * 1e3:.1f} ms" for p, s in total.items()) +
          f"; per step after the first: {1e6 * (total['ep0']+total['ep1']) / max(trainer.global_step - 1, 1):.0f} us")
    rows = sorted(table.items(), key=lambda kv: -kv[1][0])[: args.top]
    print(f"{'callback.hook':58} {'phase':>6} {'ms':>9} {'calls':>6} {'us/call':>9} {'median':>7}")
    for ((cls, hook), ph), (sec, calls, each) in rows:
        print(f"{cls + '.' + hook:58} {ph:>6} {sec * 1e3:9.2f} {calls:6d} {1e6 * sec / calls:9.1f} "
              f"{1e6 * statistics.median(each):7.1f}")
    medians = {p: sum(statistics.median(v[2]) * v[1] for (k, ph), v in table.items() if ph == p) for p in ("ep0","ep1")}
    print(f"per step after the first, from each hook's median call: "
          f"{1e6 * (medians['ep0']+medians['ep1']) / max(trainer.global_step - 1, 1):.0f} us (robust to a busy machine)")
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative")
        print(f"\ncProfile, top {args.cprofile} lightning_sanity functions by cumulative time:")
        stats.print_stats("lightning_sanity", args.cprofile)


if __name__ == "__main__":
    main()
