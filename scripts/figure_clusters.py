"""Figure: cluster-size distribution per level, before and after each cluster variant's selection."""

from rhocluster.reporting.figures import write_cluster_figure
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    write_cluster_figure(list(sm.params.levels), dict(sm.params.selections), sm.output[0], sm.params.run)
