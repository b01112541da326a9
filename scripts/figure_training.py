"""Figures: training loss and kept-token fraction per variant, from the trainer logs."""

from rhocluster.reporting.figures import write_training_figures
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    write_training_figures(dict(sm.params.logs), sm.output.loss, sm.output.kept, sm.params.run, sm.params.budget)
