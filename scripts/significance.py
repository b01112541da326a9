"""Bootstrap intervals of every accuracy and paired bootstrap tests of each variant against ct and rho1."""

from rhocluster.reporting.tables import write_significance
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    write_significance(
        evals={(m, b): (summary, predictions) for m, b, summary, predictions in sm.params.evals},
        models=list(sm.params.models),
        variants=list(sm.params.variants),
        baselines=list(sm.params.baselines),
        benchmarks=list(sm.params.benchmarks),
        out=dict(sm.output.items()),
        n_resamples=sm.params.resamples,
        seed=sm.params.seed,
        replicates={k: list(v) for k, v in sm.params.replicates.items()},
    )
