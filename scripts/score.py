"""Per-token loss of a model over one shard; for the reference model also the embedding sample."""

from pathlib import Path

from rhocluster.scoring.score import score_shard
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    sample = sm.output.get("sample")
    stats = score_shard(
        Path(sm.input.model),
        Path(sm.params.prefix),
        Path(sm.output.loss),
        Path(sample) if sample else None,
        batch_size=sm.params.batch_size,
        layer=sm.params.get("layer", -1),
        sample_tokens=sm.params.get("sample_tokens", 0),
        seed=sm.params.get("seed", 0),
    )
    log.info("%s", stats)
