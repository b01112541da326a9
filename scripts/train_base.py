"""The base model: pretrained here from scratch (tiny default) or imported from a local HF checkpoint."""

from pathlib import Path

from rhocluster.training.run import import_hf_base, run_training
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    set_threads(sm.threads)
    if sm.params.source == "pretrain":
        run_training(
            shape=sm.params.shape,
            training=dict(sm.params.training),
            shards=sm.params.shards,
            out_dir=Path(sm.output.model),
            train_log=Path(sm.output.train_log),
            summary=Path(sm.output.summary),
            checkpoints=Path(sm.params.checkpoints),
        )
    else:
        import_hf_base(Path(sm.input[0]), sm.params.shape, Path(sm.output.model), Path(sm.output.train_log), Path(sm.output.summary))
