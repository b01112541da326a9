"""Leaf cluster id of every token of one shard in every cluster tree (one streaming reference-model pass + faiss search per tree)."""

from pathlib import Path

from rhocluster.clustering.assign import TreeFiles, assign_trees
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    ref_loss = sm.output.get("ref_loss")
    trees = [
        TreeFiles(Path(proj), Path(centroids), Path(leaf), Path(dist))
        for proj, centroids, leaf, dist in zip(
            sm.input.projections, sm.input.centroids, sm.output.leaves, sm.output.dists, strict=True
        )
    ]
    stats = assign_trees(
        Path(sm.input.model),
        Path(sm.params.prefix),
        trees,
        out_ref_loss=Path(ref_loss) if ref_loss else None,
        batch_size=sm.params.batch_size,
        layer=sm.params.layer,
        position=sm.params.position,
        spherical=sm.params.spherical,
    )
    for tree, stat in zip(sm.params.trees, stats):
        log.info("tree %s: %s", tree, stat)
