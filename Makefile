# The two commands a newcomer needs. Each creates .venv and installs what it needs first
# (Python packages into .venv; the Debian data packages through scripts/install-data.sh).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench data clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch==2.13.0 first: the local CPU build (an unpinned torch would pull several GB of CUDA packages).
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps pytorch-ood==0.4.0
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[all]"
	touch $@

data:
	bash scripts/install-data.sh

demo: $(VENV)/.installed
	bash scripts/install-data.sh
	$(BIN)/unseen demo

test: $(VENV)/.installed-test lint
	bash scripts/install-data.sh --with-browser --with-postgres
	$(BIN)/python -m pytest

# The codebase checks itself: lint, formatting and types (configured in pyproject.toml).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_speed.py --scale full

clean:
	rm -rf $(VENV) .pytest_cache
