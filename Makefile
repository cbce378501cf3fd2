# Two entry points: `make demo` and `make test`. Both set up .venv first, with exactly the versions CI tested:
# .ci/constraints.txt pins every package (torch included, there and only there). `make lock` refreshes it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONSTRAINTS := .ci/constraints.txt

.PHONY: setup demo test tensorboard screenshots lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(CONSTRAINTS) pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) torch
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

demo: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m pytest -q lightning_sanity tests

# The demo's runs, one per name (healthy, or the bug injected with --bug), at http://localhost:6006.
tensorboard: setup
	$(VENV)/bin/tensorboard --logdir lightning_logs_demo

# Resolve the newest versions again (torch stays at its pin) into .ci/constraints.txt; run `make test` after.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q "$$(grep '^torch==' $(CONSTRAINTS))"
	.lock-venv/bin/python -m pip install -q -e ".[dev]" "$$(grep '^torch==' $(CONSTRAINTS))"
	{ grep '^#' $(CONSTRAINTS); \
	  { .lock-venv/bin/python -m pip freeze --exclude-editable | sed 's/^torch==\([^+]*\)+.*/torch==\1/'; \
	    .lock-venv/bin/python -m pip --version | awk '{print "pip==" $$2}'; } | sort -f; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .lock-venv

# The TensorBoard pictures of README.md and docs/tensorboard.md, from the demo; needs Chromium (apt-get install chromium).
screenshots: setup
	$(PY) docs/screenshots.py

clean:
	rm -rf $(VENV) lightning_logs lightning_logs_demo build *.egg-info
