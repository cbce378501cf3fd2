"""What the sanity suite costs, measured the way users pay it: the total time of ``trainer.fit``, bare vs suite.

Usage::

    python benchmarks/overhead.py                          # every workload, both plans, 5 pairs (~40 min)
    python benchmarks/overhead.py --workloads mlp cnn --pairs 3 --plans short
    python benchmarks/overhead.py --compare                # also grad_norm, histograms and wandb-style watching
    python benchmarks/overhead.py --memory                 # peak RSS of a 35M-parameter MLP, bare vs suite

Every run is its own ``trainer.fit`` in a fresh Python process (``--worker``), on one CPU thread, with a
TensorBoard logger and a validation loop. Its figure is the wall time of the whole ``fit`` call: every step, the
sanity-check and epoch-end validation, logging, flushes and the suite's fit-start and end-of-fit work, with no
quantile that drops the expensive steps. Bare and suite runs alternate in pairs (the order flips every pair, so a
drift of the machine's load hits both alike); each pair's ratio is over its own bare run, and the table shows
the median over the pairs and their range. The ``A/A`` row runs bare against bare: the noise of the same run on
this machine, the yardstick for every other row. The ``CPU time`` rows give the same ratios of the process's CPU
time during ``fit`` (every thread): on a machine shared with other jobs they move far less than wall time.

Workloads (synthetic data, seeded): ``mlp``, a tiny MLP (millisecond steps, 400 steps); ``cnn``, a CNN with
BatchNorm on 64x3x32x32 batches (60 steps); ``transformer``, a small Transformer classifier (60 steps); ``lm``, a
causal Transformer LM with a 32,000-token vocabulary (60 steps). Plans: ``long``, the first N steps of a run
planned as 100 epochs (stopped after N steps), and ``short``, a run planned as N steps (2 epochs); the suite
paces its periodic work by the planned length, so both matter.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

WORKLOADS = ("mlp", "cnn", "transformer", "lm")
STEPS = {"mlp": 400, "cnn": 60, "transformer": 60, "lm": 60, "mlp35m": 12}
COMPARE = ("grad_norm/step", "hist/step", "watch/100")


# --------------------------------------------------------------------------- one run, in a worker process


def _models() -> dict[str, Callable[[], Any]]:
    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    class Bench(L.LightningModule):
        def __init__(self, net: nn.Module, recipe: bool, lr: float = 1e-3) -> None:
            super().__init__()
            self.net, self.recipe, self.lr = net, recipe, lr

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def _loss(self, batch: Any) -> torch.Tensor:
            x, y = batch
            out = self(x)
            return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = self._loss(batch)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_loss", self._loss(batch))

        def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
            if self.recipe:  # Lightning's documented recipe for gradient norms
                from lightning.pytorch.utilities import grad_norm

                self.log_dict(grad_norm(self, norm_type=2))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=self.lr)

    class Encoder(nn.Module):
        def __init__(self, vocab: int, width: int, out: int, causal: bool) -> None:
            super().__init__()
            self.causal = causal
            self.embed = nn.Embedding(vocab, width)
            self.pos = nn.Parameter(torch.randn(1, 32, width) * 0.02)
            layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.1, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(width, out)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.embed(x) + self.pos[:, : x.shape[1]]
            mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1]) if self.causal else None
            h = self.encoder(h, mask=mask, is_causal=self.causal)
            return self.head(h if self.causal else h.mean(1))

    def data(x: torch.Tensor, y: torch.Tensor, batch: int) -> DataLoader:
        return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True,
                          generator=torch.Generator().manual_seed(0))

    def rule_features(n: int, width: int, classes: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, width, generator=gen)
        return x, (x[:, :classes] * 3 + x[:, classes:2 * classes]).argmax(1)

    def make(name: str, steps: int, recipe: bool) -> tuple[Any, Any, Any]:
        gen = torch.Generator().manual_seed(0)
        per_epoch = max(steps // 2, 1)
        if name in ("mlp", "mlp35m"):
            width, batch = (64, 64) if name == "mlp" else (1024, 64)
            hidden = (nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)) if name == "mlp" else (
                nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 3072), nn.ReLU(),
                nn.Linear(3072, 10))
            x, y = rule_features((per_epoch + 4) * batch, width, 10, gen)
            net: nn.Module = nn.Sequential(*hidden)
        elif name == "cnn":
            batch = 64
            x = torch.randn((per_epoch + 4) * batch, 3, 32, 32, generator=gen)
            y = (x[:, 0, :16].mean((1, 2)) > x[:, 1, 16:].mean((1, 2))).long() + 2 * (x[:, 2].mean((1, 2)) > 0).long()
            blocks: list[nn.Module] = []
            channels = 3
            for w in (16, 32, 64):
                blocks += [nn.Conv2d(channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
                channels = w
            net = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 4))
        elif name == "transformer":
            batch = 16
            x = torch.randint(0, 256, ((per_epoch + 4) * batch, 32), generator=gen)
            y = (x[:, :8] % 4).sum(1) % 4
            net = Encoder(256, 64, 4, causal=False)
        elif name == "lm":
            batch, vocab = 8, 32_000
            start = torch.randint(0, vocab, ((per_epoch + 4) * batch, 1), generator=gen)
            seq = (start + 7 * torch.arange(33)) % vocab  # an arithmetic progression per row: learnable
            x, y = seq[:, :-1], seq[:, 1:]
            net = Encoder(vocab, 64, vocab, causal=True)
        else:
            raise ValueError(f"unknown workload {name!r}")
        split = per_epoch * batch
        return Bench(net, recipe), data(x[:split], y[:split], batch), data(x[split:], y[split:], batch)

    return make


def _callbacks(config: str) -> list:
    import lightning as L

    import lightning_sanity

    class Histograms(L.Callback):
        """TensorBoard histograms of every parameter and gradient every ``every`` steps (wandb.watch-style)."""

        def __init__(self, every: int) -> None:
            self.every = every

        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            if trainer.global_step % self.every:
                return
            writer = trainer.logger.experiment
            for name, p in pl_module.named_parameters():
                writer.add_histogram(f"weights/{name}", p.detach(), trainer.global_step)
                if p.grad is not None:
                    writer.add_histogram(f"grads/{name}", p.grad, trainer.global_step)

    if config == "suite":
        return lightning_sanity.default_callbacks(print_summary=False)
    if config == "hist/step":
        return [Histograms(1)]
    if config == "watch/100":
        return [Histograms(100)]
    return []


def worker(workload: str, plan: str, config: str, steps: int, threads: int, out: str) -> None:
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import lightning as L
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    torch.set_num_threads(threads)

    class StopAfter(L.Callback):
        def on_train_batch_end(self, trainer, *args: Any) -> None:
            if trainer.global_step >= steps:
                trainer.should_stop = True

    L.seed_everything(0, verbose=False)
    model, train, val = _models()(workload, steps, recipe=config == "grad_norm/step")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as root:
        planned = dict(max_epochs=100, callbacks=[*_callbacks(config), StopAfter()]) if plan == "long" else dict(
            max_steps=steps, max_epochs=2, callbacks=_callbacks(config))
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=TensorBoardLogger(root, name="bench"),
                            log_every_n_steps=1 if config == "grad_norm/step" else 50, limit_val_batches=4,
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                            default_root_dir=root, **planned)
        start, cpu = time.perf_counter(), time.process_time()
        trainer.fit(model, train, val)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    share = None
    report = getattr(next((c for c in trainer.callbacks if type(c).__name__ == "SanitySummary"), None),
                     "last_report", None)
    if report is not None:
        share = report.get("cost", {}).get("share") if isinstance(report.get("cost"), dict) else None
    Path(out).write_text(json.dumps({
        "seconds": seconds, "cpu_seconds": cpu, "steps": trainer.global_step, "suite_share": share,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_fit_mb": rss_before / 1024,
    }))


# --------------------------------------------------------------------------- the driver


def run(workload: str, plan: str, config: str, threads: int, exact_rss: bool = False) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
        if exact_rss:
            # glibc keeps freed heap chunks below its (self-raising) mmap threshold: peak RSS then depends on
            # the order of allocations, +-50 MB between identical runs. Mapping every block over 128 kB returns
            # it to the system when freed, so peak RSS follows the live bytes in both configurations alike.
            env["MALLOC_MMAP_THRESHOLD_"] = "131072"
        cmd = [sys.executable, __file__, "--worker", workload, plan, config, str(STEPS[workload]), str(threads),
               out.name]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{workload}/{plan}/{config} failed:\n{done.stderr[-3000:]}")
        return json.loads(Path(out.name).read_text())


def ratio_cell(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.3f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def timing(args: argparse.Namespace) -> None:
    configs = ["bare", "bare (A/A)", "suite", *(COMPARE if args.compare else ())]
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    bare_seconds: dict[tuple[str, str], list[float]] = {}
    shares: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], dict[str, list[float]]] = {}
    for pair in range(args.pairs):
        for workload in args.workloads:
            for plan in args.plans:
                key = (workload, plan)
                order = configs if pair % 2 == 0 else [configs[0], *reversed(configs[1:])]
                got = {c: run(workload, plan, "bare" if c.startswith("bare") else c, args.threads) for c in order}
                bare = got["bare"]["seconds"]
                bare_seconds.setdefault(key, []).append(bare)
                for c in configs[1:]:
                    cells.setdefault(key, {}).setdefault(c, []).append(got[c]["seconds"] / bare)
                    cpu.setdefault(key, {}).setdefault(c, []).append(got[c]["cpu_seconds"] / got["bare"]["cpu_seconds"])
                if got["suite"].get("suite_share") is not None:
                    shares.setdefault(key, []).append(got["suite"]["suite_share"])
                print(f"pair {pair + 1}: {workload:>11} {plan:>5}: bare {bare:6.2f} s, " + ", ".join(
                    f"{c} {got[c]['seconds'] / bare:.3f}x (CPU {cpu[key][c][-1]:.3f}x)" for c in configs[1:]),
                    flush=True)
    print(f"\nCPU, {args.threads} thread(s); total `trainer.fit` time, fresh process per run; median of {args.pairs} "
          "interleaved pairs over the same pair's bare run, range in brackets.\n")
    keys = list(cells)
    print("| configuration | " + " | ".join(f"{w} {p} ({STEPS[w]} steps)" for w, p in keys) + " |")
    print("|---|" + "---:|" * len(keys))
    print("| bare, seconds | " + " | ".join(f"{statistics.median(bare_seconds[k]):.2f} s" for k in keys) + " |")
    for c in configs[1:]:
        print(f"| {c} | " + " | ".join(ratio_cell(cells[k][c]) for k in keys) + " |")
    for c in ("bare (A/A)", "suite"):
        print(f"| {c}, CPU time | " + " | ".join(ratio_cell(cpu[k][c]) for k in keys) + " |")
    if shares:
        print("| suite's own share (summary) | " + " | ".join(
            f"{100 * statistics.median(shares[k]):.1f} %" if k in shares else "n/a" for k in keys) + " |")


def memory(args: argparse.Namespace) -> None:
    rows = []
    for pair in range(args.pairs):
        order = ("bare", "suite") if pair % 2 == 0 else ("suite", "bare")
        got = {c: run("mlp35m", "short", c, args.threads, exact_rss=True) for c in order}
        rows.append(got)
        print(f"pair {pair + 1}: " + ", ".join(f"{c} peak {got[c]['peak_rss_mb']:.0f} MB" for c in order), flush=True)
    extra = [r["suite"]["peak_rss_mb"] - r["bare"]["peak_rss_mb"] for r in rows]
    bare = statistics.median(r["bare"]["peak_rss_mb"] for r in rows)
    largest = 4096 * 4096 * 4 / 2**20
    print(f"\n35M-parameter MLP (Adam, CPU, {STEPS['mlp35m']} steps): bare peak RSS {bare:.0f} MB; the suite adds "
          f"{statistics.median(extra):.0f} MB (range {min(extra):.0f}-{max(extra):.0f}); largest layer "
          f"{largest:.0f} MB.")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        workload, plan, config, steps, threads, out = sys.argv[2:8]
        return worker(workload, plan, config, int(steps), int(threads), out)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--plans", nargs="+", choices=("long", "short"), default=["long", "short"])
    parser.add_argument("--pairs", type=int, default=5, help="interleaved bare/suite pairs (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--compare", action="store_true", help="also the grad_norm, histogram and watch rows")
    parser.add_argument("--memory", action="store_true", help="peak RSS of a 35M-parameter MLP instead of timing")
    args = parser.parse_args()
    memory(args) if args.memory else timing(args)


if __name__ == "__main__":
    main()
