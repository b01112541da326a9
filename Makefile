# Two entry points for a fresh machine: `make run` (install + the tiny default workflow end to end)
# and `make test` (install + the test suite). Both create .venv with Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: install run smoke test test-fast lint rulegraph

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU build where one lies on local disk and
# the CUDA build from PyPI elsewhere.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

run: install
	$(BIN)/snakemake --cores $(CORES)

# The real config's DAG in miniature, offline (config/rho1-smoke.yaml; docs/running.md): a local hub in
# the real repositories' layouts, then the real config with only sizes, device and hub sources changed.
# The benchmark files come from the harness' pinned URLs, or from HARNESS served on localhost.
HARNESS ?= ../shared/benchmarks/math-evaluation-harness-7fd4949
SMOKE := $(BIN)/snakemake --cores $(CORES) --configfile config/rho1-tinyllama.yaml config/rho1-smoke.yaml
smoke: install
	$(BIN)/python -m rhocluster.hub local resources/hub
	if [ -d "$(HARNESS)" ]; then $(BIN)/python -m rhocluster.evaluation.mirror "$(HARNESS)" -- $(SMOKE); else $(SMOKE); fi

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
