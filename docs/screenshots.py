"""Take the screenshots of the TensorBoard dashboards shown in README.md and docs/tensorboard.md.

Runs the demo (``examples/quickstart.py``), serves its logs with a real TensorBoard server on a free localhost
port, and photographs a few dashboards with headless Chromium. Regenerate the pictures after a change to what the
suite writes to TensorBoard::

    make screenshots                      # or, in the project's virtual environment:
    python docs/screenshots.py            # writes docs/images/tensorboard-*.png
    python docs/screenshots.py --chromium /path/to/chrome --epochs 2 --out /tmp/shots

Needs Chromium (Debian/Ubuntu: ``apt-get install chromium``) or Google Chrome; nothing is downloaded and the
pages are only fetched from the local server. Each PNG is reduced to a 256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: (file name, TensorBoard page, browser window WIDTH,HEIGHT): the dashboards worth a picture, each in a window
#: about the size of what it shows.
PAGES = (
    ("tensorboard-images.png", "#images", "1100,560"),
    ("tensorboard-custom-scalars.png", "#custom_scalars", "1400,1000"),
    ("tensorboard-summary.png", "#text", "1400,720"),
)


def find_browser(given: str | None) -> str:
    """The Chromium/Chrome executable to use, or exit with a message that says how to get one."""
    for name in ([given] if given else BROWSERS):
        path = shutil.which(name) if name else None
        if path:
            return path
    wanted = f"'{given}'" if given else "any of " + ", ".join(BROWSERS)
    sys.exit(f"screenshots: headless Chromium is needed and {wanted} was not found on the PATH.\n"
             "Install it (Debian/Ubuntu: `apt-get install chromium`) or pass --chromium /path/to/chrome.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read().decode())


def run_demo(root: Path, epochs: int) -> Path:
    """Run the quickstart demo under ``root``, the folder TensorBoard reads (the demo names its run ``healthy``)."""
    subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--epochs", str(epochs),
                    "--root", str(root)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return root


def serve(logdir: Path, port: int) -> subprocess.Popen:
    """A TensorBoard server on ``port``, once it serves the run's images and custom-scalars layout."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if get_json(port, "/data/plugin/images/tags") and get_json(port, "/data/plugin/custom_scalars/layout"):
                return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            sys.exit("screenshots: TensorBoard did not serve the demo's logs within 90 s")
        time.sleep(1)


def shoot(browser: str, url: str, out: Path, size: str, budget_ms: int) -> None:
    """One headless Chromium screenshot of ``url``; ``budget_ms`` of virtual time lets the JS app render."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size}",
             f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
        )
    if not out.is_file():
        sys.exit(f"screenshots: Chromium wrote no {out}")
    from PIL import Image  # ships with TensorBoard

    Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chromium", help="Chromium or Chrome executable (default: the first on the PATH)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="folder for the PNG files")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the demo run")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time for each page to render")
    args = parser.parse_args(argv)
    browser = find_browser(args.chromium)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as work:
        logdir = run_demo(Path(work) / "demo", args.epochs)
        port = free_port()
        server = serve(logdir, port)
        try:
            time.sleep(3)  # one more reload: every plugin has read the whole run
            for name, page, size in PAGES:
                out = out_dir / name
                shoot(browser, f"http://127.0.0.1:{port}/{page}", out, size, args.budget_ms)
                written.append(out)
                print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
                      f"{os.path.getsize(out) // 1024} KB")
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    return written


if __name__ == "__main__":
    main()
