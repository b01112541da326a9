"""The base model: pretrained here from scratch (tiny default) or imported from a local HF checkpoint."""

from pathlib import Path

from rhocluster.training.run import import_hf_base, launch_training
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    set_threads(sm.threads)
    if sm.params.source == "pretrain":
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
            ),
            gpus=sm.resources.get("gpus", 0),
        )
    else:
        import_hf_base(
            Path(sm.input[0]),
            sm.params.shape,
            Path(sm.output.model),
            Path(sm.output.train_log),
            Path(sm.output.summary),
            Path(sm.output.plot),
        )
