# Two set-up commands: `make demo` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(DEVSTAMP): $(STAMP)
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/classwise demo

test: $(DEVSTAMP)
	-@bash scripts/install-chromium.sh
	$(PY) -m pytest -q --durations=15

lint: $(DEVSTAMP)
	$(PY) -m ruff check src tests bench

bench: $(STAMP)
	$(PY) bench/natural.py

clean:
	rm -rf $(VENV) runs .pytest_cache
