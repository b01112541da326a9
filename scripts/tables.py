"""Accuracy table (model x benchmark, beside the published rows), kept-fraction-per-label table (without
labels: what each selection kept, by fixed excess loss and over the leaf clusters) and the run's variant
table."""

from rhocluster.reporting.tables import write_tables
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    write_tables(
        evals={(m, b): (summary, predictions) for m, b, summary, predictions in sm.params.evals},
        summaries=dict(sm.params.summaries),
        models=list(sm.params.models),
        benchmarks=list(sm.params.benchmarks),
        run=sm.params.run,
        replicates={k: list(v) for k, v in sm.params.replicates.items()},
        label_replicates={k: list(v) for k, v in sm.params.label_replicates.items()},
        mask_summaries=dict(sm.params.masks),
        out=dict(sm.output.items()),
        variants={k: dict(v) for k, v in sm.params.variants.items()},
    )
