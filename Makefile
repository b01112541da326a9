# Two entry points for a fresh machine: `make run` (install + the tiny default workflow end to end)
# and `make test` (install + the test suite). Both create .venv with Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: install run test lint rulegraph

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

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

rulegraph: install
	$(BIN)/snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg
