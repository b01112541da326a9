"""Accuracy table (model x benchmark) and kept-fraction-per-label table, as Markdown and CSV."""

from rhocluster.reporting.tables import write_tables
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    write_tables(
        evals={(m, b): p for m, b, p in sm.params.evals},
        summaries=dict(sm.params.summaries),
        models=list(sm.params.models),
        benchmarks=list(sm.params.benchmarks),
        run=sm.params.run,
        out=dict(sm.output),
    )
