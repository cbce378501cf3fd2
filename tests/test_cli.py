"""The command line, called as a user would: `python -m lightning_sanity ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import fit, read_report

import lightning_sanity

USER_MODULE = textwrap.dedent(
    '''
    import lightning as L
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset


    class Net(L.LightningModule):
        def __init__(self, lr=1e-2):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
            self.lr = lr

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.lr)


    class BlindNet(Net):
        def forward(self, x):
            return self.net(x * 0)


    class NanNet(Net):
        """The loss goes NaN at global step 5: log of a negative number in the last layer's output."""

        def forward(self, x):
            out = self.net(x)
            if self.trainer is not None and self.global_step == 5 and self.training:
                out = torch.log(out - out.max() - 1.0)
            return out


    class NeedsArgs(Net):
        def __init__(self, width):
            super().__init__()


    def make_loader():
        # A learnable task: the label is the index of the largest of five random projections of the input.
        g = torch.Generator().manual_seed(0)
        x = torch.randn(512, 20, generator=g)
        y = (x @ torch.randn(20, 5, generator=g)).argmax(1)
        return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=g)


    class Digits(L.LightningDataModule):
        def train_dataloader(self):
            return make_loader()
    '''
)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("user_project")
    (folder / "my_models.py").write_text(USER_MODULE)
    return folder


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), str(Path(lightning_sanity.__file__).parents[1])])
    env.pop("PL_GLOBAL_SEED", None)
    return subprocess.run([sys.executable, "-m", "lightning_sanity", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_subcommands(tmp_path):
    out = cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    for name in ("report", "replay", "overfit", "baseline"):
        assert name in out.stdout


def test_report_reprints_a_real_run(tmp_path):
    from helpers import Classifier, digits_loaders

    train, val = digits_loaders(n=256)
    trainer = fit(Classifier(), tmp_path, train, val, callbacks=lightning_sanity.default_callbacks(print_summary=False),
                  max_epochs=1)
    log_dir = trainer.log_dir
    report = read_report(log_dir)
    text = cli("report", log_dir, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"Sanity summary: {report['status'].upper()}" in text.stdout and "initial-loss" in text.stdout
    md = cli("report", log_dir, "--format", "md", cwd=tmp_path)
    assert md.stdout == (Path(log_dir) / "sanity" / "summary.md").read_text()
    js = cli("report", str(Path(log_dir) / "sanity" / "summary.json"), "--format", "json", cwd=tmp_path)
    assert json.loads(js.stdout) == report


def test_bad_inputs_exit_2_with_one_clear_line(tmp_path, user_dir):
    other = tmp_path / "other" / "sanity"
    other.mkdir(parents=True)
    (other / "summary.json").write_text(json.dumps({"schema": 2, "findings": []}))
    cases = [
        (("report", str(tmp_path / "missing")), "found no summary.json"),
        (("report", str(tmp_path / "other")), "schema 2"),
        (("overfit", "no_such_pkg.models:Net", "--data", "my_models:make_loader"), "cannot import module 'no_such_pkg.models'"),
        (("overfit", "my_models:Nett", "--data", "my_models:make_loader"), "has no attribute 'Nett'"),
        (("baseline", "my_models:Net", "--data", "my_models"), "MODULE:NAME"),
        (("overfit", "my_models:NeedsArgs", "--data", "my_models:make_loader"), "no arguments"),
        (("replay", str(tmp_path / "nope.pt"), "--model", "my_models:Net"), "does not exist"),
    ]
    for args, expected in cases:
        out = cli(*args, cwd=user_dir)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "error" in lines[0], (args, out.stderr)


def test_overfit_subcommand_passes_and_writes_report(user_dir, tmp_path):
    out_dir = tmp_path / "overfit"
    out = cli("overfit", "my_models:Net", "--data", "my_models:make_loader", "--steps", "300", "--out", str(out_dir),
              cwd=user_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("overfit-one-batch: PASS")
    assert read_report(out_dir)["status"] == "pass"
    again = cli("report", str(out_dir), cwd=user_dir)
    assert again.returncode == 0 and "overfit-one-batch" in again.stdout


def test_baseline_subcommand_fails_a_blind_model(user_dir, tmp_path):
    out = cli("baseline", "my_models:BlindNet", "--data", "my_models:Digits", "--steps", "40", "--format", "json",
              "--out", str(tmp_path), cwd=user_dir)
    assert out.returncode == 1, out.stdout + out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["passed"] is False and verdict["mode"] == "no-gap"
    report = read_report(tmp_path)
    assert {f["check"] for f in report["findings"]} >= {"loss-trend", "constant-output"}
    strict = cli("report", str(tmp_path), "--fail-on", "warn", cwd=user_dir)
    assert strict.returncode == 1


def test_replay_subcommand_names_the_module_of_a_real_nan(user_dir, tmp_path, monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(user_dir))
    models = importlib.import_module("my_models")
    trainer = fit(models.NanNet(), tmp_path, models.make_loader(), None, max_epochs=2,
                  callbacks=lightning_sanity.default_callbacks(print_summary=False))
    (finding,) = [f for f in read_report(trainer.log_dir)["findings"] if f["check"] == "non-finite"]
    out = cli("replay", str(Path(trainer.log_dir) / finding["replay"]), "--model", "my_models:NanNet", cwd=user_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reproduced" in out.stdout.lower() and "net" in out.stdout
    # progress: the replay's stages as they run, on stderr
    assert "replay: loading" in out.stderr and "running backward with anomaly detection" in out.stderr
