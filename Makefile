# The two commands a newcomer needs. Each creates .venv and installs what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

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
	$(BIN)/pip install --quiet -e .
	touch $@

demo: $(VENV)/.installed
	$(BIN)/unseen demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_speed.py --scale full

clean:
	rm -rf $(VENV) .pytest_cache
