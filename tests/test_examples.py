"""Every example runs, quickly, and says what its docs promise: so they never rot."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from helpers import read_report, serious

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quickstart_healthy_run_passes(tmp_path, capsys):
    log_dir = _load("quickstart").main(["--epochs", "1", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Sanity summary: PASS" in out and f"tensorboard --logdir {tmp_path.resolve()}" in out
    assert Path(log_dir).parent.name == "healthy"  # the run's name in TensorBoard
    # The printed command works as pasted into a new shell: an absolute path to an executable, no PATH needed.
    command = next(line for line in out.splitlines() if "--logdir" in line).split()
    assert Path(command[0]).is_absolute() and os.access(command[0], os.X_OK)
    assert read_report(log_dir)["status"] == "pass"


@pytest.mark.parametrize(
    "bug, check, epochs",
    [
        ("flipped-sign", "initial-loss", 1),
        ("softmax-into-cross-entropy", "loss-input", 1),
        ("view-instead-of-permute", "batch-mixing", 1),
        ("detached-encoder", "dead-gradient", 1),
        ("unnormalized-inputs", "input-scale", 1),
        ("eval-mode", "train-mode", 1),
        ("lr-too-high", "loss-trend", 3),
        ("batchnorm-bad-batch", "batchnorm-variance", 2),
    ],
)
def test_quickstart_bug_switch_gets_its_finding(tmp_path, bug, check, epochs):
    log_dir = _load("quickstart").main(["--epochs", str(epochs), "--bug", bug, "--root", str(tmp_path)])
    assert check in {f["check"] for f in serious(read_report(log_dir))}


def test_replay_nan_example(tmp_path, capsys):
    _load("replay_nan").main(["--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "epoch: 2" in out and "batch_idx: 4" in out
    assert "same batch as in the bundle: True" in out


@pytest.mark.parametrize("bug, status", [(None, "pass"), ("nan-on-rank-1", "fail")])
def test_ddp_example_two_processes(tmp_path, bug, status):
    import subprocess

    args = [sys.executable, str(EXAMPLES / "ddp.py"), "--epochs", "1", "--root", str(tmp_path)]
    out = subprocess.run(args + (["--bug", bug] if bug else []), capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"status {status}" in out.stdout
    (summary,) = list(tmp_path.rglob("summary.json"))
    report = read_report(summary)
    if bug:
        (finding,) = [f for f in serious(report) if f["check"] == "non-finite"]
        assert finding["data"]["rank"] == 1 and finding["global_step"] == 10
