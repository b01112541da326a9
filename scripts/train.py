"""Train the reference model or a CPT variant with the one trainer."""

from pathlib import Path

from rhocluster.training.run import run_training
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    set_threads(sm.threads)
    run_training(
        shape=sm.params.shape,
        training=dict(sm.params.training),
        shards=sm.params.shards,
        out_dir=Path(sm.output.model),
        train_log=Path(sm.output.train_log),
        summary=Path(sm.output.summary),
        checkpoints=Path(sm.params.checkpoints),
        init=sm.input.get("init"),
        masks=sm.input.get("masks"),
        ref_losses=sm.input.get("ref_loss"),
    )
