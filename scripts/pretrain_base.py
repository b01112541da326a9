"""The base model: pretrained here from scratch (tiny default) or imported from a local HF checkpoint."""

from pathlib import Path

from rhocluster.training.jobs import import_hf_base, launch_training, rule_spec
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    set_threads(sm.threads)
    if sm.params.source == "pretrain":
        launch_training(rule_spec(sm.input, sm.output, sm.params), gpus=sm.resources.get("gpus", 0))
    else:
        import_hf_base(
            Path(sm.input[0]),
            sm.params.shape,
            Path(sm.output.model),
            Path(sm.output.train_log),
            Path(sm.output.summary),
            Path(sm.output.plot),
        )
