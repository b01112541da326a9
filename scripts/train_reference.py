"""The reference model: the base model fine-tuned on the high-quality mixture."""

from rhocluster.training.jobs import launch_training, rule_spec
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    set_threads(sm.threads)
    launch_training(rule_spec(sm.input, sm.output, sm.params), gpus=sm.resources.get("gpus", 0))
