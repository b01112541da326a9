"""Fit one level of the hierarchical k-means (level 1: token sample; level l: centroids of level l-1)."""

from pathlib import Path

import numpy as np

from rhocluster.clustering.hierarchy import fit_level, save_level
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    lv = sm.params.level
    points = np.load(sm.input.points).astype(np.float32)
    weights = np.load(sm.input.child_sizes) if "child_sizes" in sm.input.keys() else None
    result = fit_level(
        points,
        lv["k"],
        weights=weights,
        n_iter=lv.get("n_iter", 20),
        seed=sm.params.seed,
        init=lv.get("init", "kmeans++"),
        spherical=sm.params.spherical,
        resampling_rounds=lv.get("resampling_rounds", 0),
        resampling_fraction=lv.get("resampling_fraction", 0.5),
    )
    save_level(result, Path(sm.params.out_dir), {"level": int(sm.wildcards.level), **lv})
    log.info("level %s: k=%d n=%d inertia=%.4f", sm.wildcards.level, lv["k"], len(points), result.inertia)
