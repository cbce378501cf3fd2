"""The real TensorBoard server serves what the suite wrote: runs, tags of every kind, and the custom-scalars layout."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import lightning as L
import pytest
from helpers import Classifier, fit
from torch import nn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read().decode())


@pytest.fixture
def served_run(tmp_path):
    L.seed_everything(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    t = fit(Classifier(net=net), tmp_path, max_epochs=2, log_every_n_steps=5)
    port = _free_port()
    exe = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [str(exe), "--logdir", str(tmp_path / "logs"), "--host", "127.0.0.1", "--port", str(port),
         "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/data/runs"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("TensorBoard did not start serving the run within 60 s")
            time.sleep(0.5)
        time.sleep(2)  # let one more reload pick up every plugin's data
        yield port, Path(t.log_dir).name
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def _sanity_tags(port: int, plugin: str, run: str) -> set[str]:
    tags = _get(port, f"/data/plugin/{plugin}/tags")
    return {t for t in tags.get(run, {}) if t.startswith("sanity/")}


def test_tensorboard_serves_every_kind_of_sanity_tag(served_run):
    port, run = served_run
    assert run in _get(port, "/data/runs")
    assert "sanity/summary/text_summary" in _sanity_tags(port, "text", run)
    scalars = _sanity_tags(port, "scalars", run)
    for expected in ("sanity/grad_norm/global", "sanity/weight_norm/net.0", "sanity/update_ratio/net.0",
                     "sanity/bn_batch_ratio/net.1", "sanity/predictions/accuracy"):
        assert expected in scalars, (expected, sorted(scalars))
    images = _sanity_tags(port, "images", run)
    assert {"sanity/predictions/probabilities", "sanity/predictions/true_class_over_time"} <= images, images
    assert "sanity/predictions/outputs" in _sanity_tags(port, "histograms", run)
    layout = _get(port, "/data/plugin/custom_scalars/layout")
    titles = {chart["title"] for category in layout.get("category", []) for chart in category["chart"]}
    assert {"gradient L2 norm per layer (pre-clip)", "weight L2 norm per layer"} <= titles, titles
    # The latest of the layouts written as charts gained data: one naming scheme, nothing empty (ReLU only).
    assert "running variance, channel mean" in titles and "saturated outputs per layer" not in titles, titles
    assert all(category["title"].startswith("sanity: ") for category in layout["category"]), layout
