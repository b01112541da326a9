"""One CPT model: a variant at one seed, from the base model, on the web shards."""

from rhocluster.training.jobs import launch_training, rule_spec
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    set_threads(sm.threads)
    launch_training(rule_spec(sm.input, sm.output, sm.params), gpus=sm.resources.get("gpus", 0))
