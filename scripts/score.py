"""Per-token loss of a model over one shard and/or the seeded sample of token representations."""

from pathlib import Path

from rhocluster.scoring.score import score_shard
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    loss, sample = sm.output.get("loss"), sm.output.get("sample")
    stats = score_shard(
        Path(sm.input.model),
        Path(sm.params.prefix),
        Path(loss) if loss else None,
        Path(sample) if sample else None,
        batch_size=sm.params.batch_size,
        layer=sm.params.get("layer", "middle"),
        position=sm.params.get("position", "read"),
        sample_tokens=sm.params.get("sample_tokens", 0),
        sample_windows=sm.params.get("sample_windows"),
        seed=sm.params.get("seed", 0),
    )
    log.info("%s", stats)
