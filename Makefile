# Two entry points for a fresh machine: `make run` (install + the tiny default workflow end to end)
# and `make test` (install + the test suite). Both create .venv with Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: install run test test-fast lint rulegraph

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU build where one lies on local disk and
# the CUDA build from PyPI elsewhere.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

run: install
	$(BIN)/snakemake --cores $(CORES)

test: install
	$(BIN)/pytest -q

# The edit-test loop: unit tests only, no Snakemake, torchrun or training runs (tests/conftest.py marks
# those slow). A few minutes on 2 cores.
test-fast: install
	$(BIN)/pytest -q -m "not slow and not integration"

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

rulegraph: install
	$(BIN)/snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg
