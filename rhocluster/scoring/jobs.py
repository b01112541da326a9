"""Entry point shared by two scoring rules (rules/scoring.smk): score_reference and score_base run one
job, the per-token loss over one web shard, on two models (the reference and the base). embed_sample's
script calls :func:`~rhocluster.scoring.score.score_shard` itself.
"""

from __future__ import annotations

from pathlib import Path

from rhocluster.scoring.score import score_shard
from rhocluster.workflow.scripts import logged, set_threads


def score_loss_job(
    model_dir: Path | str,
    shard_prefix: Path | str,
    out_loss: Path | str,
    log_path: Path | str,
    *,
    threads: int,
    batch_size: int,
) -> dict:
    """Write the per-token loss (float16 [W, S], NaN at position 0) of the model in ``model_dir`` over
    the shard at ``shard_prefix`` to ``out_loss``, on ``threads`` threads, logging to ``log_path``;
    returns :func:`~rhocluster.scoring.score.score_shard`'s stats."""
    with logged(log_path) as log:
        set_threads(threads)
        stats = score_shard(Path(model_dir), Path(shard_prefix), Path(out_loss), batch_size=batch_size)
        log.info("%s", stats)
    return stats
