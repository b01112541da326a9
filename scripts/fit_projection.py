"""Pool the per-shard embedding samples and fit the projection applied before clustering."""

from rhocluster.scoring.projection import fit_projection_files
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    proj = sm.params.projection
    stats = fit_projection_files(
        list(sm.input),
        sm.output.sample,
        sm.output.index,
        sm.output.projection,
        kind=proj.get("kind", "pca"),
        dim=proj.get("dim", 32),
        normalize=sm.params.normalize,
        seed=sm.params.seed,
    )
    log.info("%s", stats)
