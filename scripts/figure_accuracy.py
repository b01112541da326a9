"""Figure: accuracy per benchmark and model with bootstrap error bars."""

from rhocluster.reporting.figures import write_accuracy_figure
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    write_accuracy_figure(sm.input.ci, sm.output[0], sm.params.run)
