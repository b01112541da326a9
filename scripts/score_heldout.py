"""Per-token loss of one model on every held-out shard (text it never trained on)."""

from pathlib import Path

from rhocluster.scoring.score import score_shard
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    for prefix, out in zip(sm.params.prefixes, sm.output):
        stats = score_shard(Path(sm.input.model), Path(prefix), Path(out), batch_size=sm.params.batch_size)
        log.info("%s: %s", prefix, stats)
