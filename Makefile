# Two entry points: `make demo` and `make test`. Both set up .venv first.
# Torch is pinned here, and only here, for dev and CI: the CPU build of 2.13.0 installs from local disk
# quickly, where an unpinned `torch` may pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test screenshots clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]" "$(TORCH_PIN)"
	touch $@

demo: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m pytest -q lightning_sanity tests

# The TensorBoard pictures of README.md and docs/tensorboard.md, from the demo; needs Chromium (apt-get install chromium).
screenshots: setup
	$(PY) docs/screenshots.py

clean:
	rm -rf $(VENV) lightning_logs build *.egg-info
