# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,plot,sweep]"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m autotensor demo --out demo_out

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/ops_overhead.py
	$(PY) bench/layers.py
	$(PY) bench/peers.py     # prints a note and skips when no peer engine is installed
	$(PY) bench/models.py    # the zoo's training steps against PyTorch

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo_out
