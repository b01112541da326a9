"""assign stage: every token's nearest level-1 centroid, from a streaming pass of the reference model.

Embeddings of the whole corpus never touch disk: each batch's hidden states are projected and searched
(faiss) in memory, and only int32 leaf ids and float16 distances are written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rhocluster.clustering.kmeans import assign_nearest
from rhocluster.data.atomic import save_npy
from rhocluster.data.shards import Shard
from rhocluster.scoring.forward import default_device, load_causal_lm, stream_shard
from rhocluster.scoring.projection import Projection


def assign_shard(
    model_dir: Path,
    shard_prefix: Path,
    projection_path: Path,
    centroids_path: Path,
    out_leaf: Path,
    out_dist: Path,
    *,
    batch_size: int = 32,
    layer: int = -1,
    spherical: bool = False,
    device: str | None = None,
) -> dict:
    """Write leaf ids int32 [W, S] (-1 at position 0) and squared distances float16 [W, S] (NaN at 0)."""
    shard = Shard(shard_prefix)
    projection = Projection.load(projection_path)
    centroids = np.load(centroids_path).astype(np.float32)
    model = load_causal_lm(model_dir, device or default_device())
    leaf = np.full(shard.shape, -1, dtype=np.int32)
    dist = np.full(shard.shape, np.nan, dtype=np.float16)
    for start, _, hidden in stream_shard(model, shard, batch_size, layer):
        b, s, d = hidden.shape
        x = projection.apply(hidden[:, 1:].reshape(-1, d).cpu().numpy())
        if x.shape[1] != centroids.shape[1]:
            raise ValueError(
                f"shard {shard_prefix}: projected width {x.shape[1]} != centroid width {centroids.shape[1]} "
                f"({centroids_path})"
            )
        ids, d2 = assign_nearest(x, centroids, spherical=spherical)
        leaf[start : start + b, 1:] = ids.reshape(b, s - 1)
        dist[start : start + b, 1:] = d2.reshape(b, s - 1).astype(np.float16)
    save_npy(out_leaf, leaf)
    save_npy(out_dist, dist)
    counts = np.bincount(leaf[leaf >= 0], minlength=len(centroids))
    return {"n_tokens": int((leaf >= 0).sum()), "leaves_used": int((counts > 0).sum())}
