"""The seeded sample of token representations of one web shard (reference model; the tree is fitted on it)."""

from pathlib import Path

from rhocluster.scoring.score import score_shard
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    p = sm.params
    stats = score_shard(
        Path(sm.input.model), Path(p.prefix), None, Path(sm.output.sample), batch_size=p.batch_size,
        layer=p.layer, position=p.position, sample_tokens=p.sample_tokens, sample_windows=p.sample_windows, seed=p.seed,
    )
    log.info("%s", stats)
