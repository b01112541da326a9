"""Fit one level of the hierarchical k-means (level 1: token sample; level l: centroids of level l-1)."""

from pathlib import Path

from rhocluster.clustering.hierarchy import fit_and_save_level
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    level = int(sm.wildcards.level)
    result = fit_and_save_level(
        Path(sm.input.points),
        Path(sm.params.out_dir),
        level,
        dict(sm.params.level),
        child_sizes_path=Path(sm.input.child_sizes) if "child_sizes" in sm.input.keys() else None,
        seed=sm.params.seed,
        spherical=sm.params.spherical,
    )
    log.info("level %d: k=%d n=%d inertia=%.4f", level, len(result.sizes), len(result.assignment), result.inertia)
