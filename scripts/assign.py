"""Leaf cluster id of every token of one shard (streaming reference-model pass + faiss search)."""

from pathlib import Path

from rhocluster.clustering.assign import assign_shard
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    ref_loss = sm.output.get("ref_loss")
    stats = assign_shard(
        Path(sm.input.model),
        Path(sm.params.prefix),
        Path(sm.input.projection),
        Path(sm.input.centroids),
        Path(sm.output.leaf),
        Path(sm.output.dist),
        out_ref_loss=Path(ref_loss) if ref_loss else None,
        batch_size=sm.params.batch_size,
        layer=sm.params.layer,
        position=sm.params.position,
        spherical=sm.params.spherical,
    )
    log.info("%s", stats)
