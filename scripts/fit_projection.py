"""Pool the per-shard embedding samples and fit the projection applied before clustering."""

import numpy as np

from rhocluster.data.atomic import atomic_path, save_npy
from rhocluster.scoring.projection import fit_projection
from rhocluster.scoring.score import pool_samples
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    raw, shard_idx, positions = pool_samples(list(sm.input))
    proj_cfg = sm.params.projection
    projection = fit_projection(
        raw, proj_cfg.get("kind", "pca"), proj_cfg.get("dim", 32), sm.params.normalize, sm.params.seed
    )
    sample = projection.apply(raw)
    save_npy(sm.output.sample, sample)
    with atomic_path(sm.output.index, ".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, shard=shard_idx, position=positions)
    projection.save(sm.output.projection)
    log.info("sample %s -> %s", raw.shape, sample.shape)
