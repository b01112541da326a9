"""Train the reference model or a CPT variant with the one trainer (torchrun when several GPUs)."""

from rhocluster.training.run import launch_training
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    set_threads(sm.threads)
    launch_training(
        dict(
            shape=dict(sm.params.shape),
            training=dict(sm.params.training),
            shards=list(sm.params.shards),
            out_dir=sm.output.model,
            train_log=sm.output.train_log,
            summary=sm.output.summary,
            plot=sm.output.plot,
            checkpoints=sm.params.checkpoints,
            init=sm.input.get("init"),
            masks=list(sm.input.get("masks", [])) or None,
            ref_losses=list(sm.input.get("ref_loss", [])) or None,
            leaves=list(sm.input.get("leaves", [])) or None,
            levels=list(sm.params.get("levels", [])) or None,
        ),
        gpus=sm.resources.get("gpus", 0),
    )
