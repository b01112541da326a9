"""Generate the tiny test sets of the nine benchmarks in the harness' layout and formats."""

from pathlib import Path

from rhocluster.evaluation.tiny import write_tiny_benchmarks
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    write_tiny_benchmarks(Path(sm.output[0]), sm.params.n, sm.params.seed)
