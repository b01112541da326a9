"""The seeded samples of token representations of one web shard, one per cluster tree, from one reference-model pass."""

from pathlib import Path

from rhocluster.scoring.score import score_shard
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    p = sm.params
    stats = score_shard(
        Path(sm.input.model), Path(p.prefix), None, [Path(f) for f in sm.output.samples], batch_size=p.batch_size,
        layer=p.layer, position=p.position, sample_tokens=p.sample_tokens, sample_windows=p.sample_windows,
        seed=list(p.seeds),
    )
    log.info("%s", stats)
