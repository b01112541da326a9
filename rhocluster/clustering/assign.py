"""assign stage: every token's nearest level-1 centroid, from a streaming pass of the reference model.

The representation of a token is the one the embedding sample was drawn from (``scoring.layer`` and
``scoring.position``, :func:`~rhocluster.scoring.forward.forward_windows`); the projection file
records that space and a mismatch is refused, so the tree and the assignment never live in different
spaces.

Embeddings of the whole corpus never touch disk: each batch's hidden states are projected and searched
(faiss) in memory, and only int32 leaf ids and float16 distances are written, batch by batch
(:class:`~rhocluster.scoring.rows.NpyRowWriter`), so memory is bounded by the batch however large
the shard. The LM head is not run unless the reference loss is wanted too.

Fused pass (``scoring.fused_pass`` in the workflow): the same job can also write the reference model's
per-token loss (``out_ref_loss``): at the cost of the LM head and the layers above ``scoring.layer``
for ``predict`` (one pass), of a second pass over every window for ``read``. That file is a by-product of
a job that depends on the level-1 clustering, so the workflow lets only the cluster variants read it
(``cluster_excess``); Rho-1 and everything else keep reading ``score_reference``'s loss, which depends on
no clustering parameter. See ``rules/scoring.smk`` for when the switch saves a pass.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from rhocluster.clustering.kmeans import NearestCentroid
from rhocluster.scoring.forward import Layer, load_for_shard, resolve_layer, stream_shard
from rhocluster.scoring.projection import Projection
from rhocluster.scoring.rows import NpyRowWriter


def assign_shard(
    model_dir: Path,
    shard_prefix: Path,
    projection_path: Path,
    centroids_path: Path,
    out_leaf: Path,
    out_dist: Path,
    *,
    out_ref_loss: Path | None = None,
    batch_size: int = 32,
    layer: Layer = "middle",
    position: str = "read",
    spherical: bool = False,
    device: str | None = None,
    model=None,
) -> dict:
    """Write leaf ids int32 [W, S] (-1 at position 0) and distances float16 [W, S] (NaN at 0).

    Distances are squared L2 to the leaf centroid, or ``1 - cos`` when ``spherical``, in the projected
    space. ``layer`` and ``position`` choose the representation (as for the sample; checked against
    the projection's record). ``out_ref_loss``: also write the model's per-token loss (float16 [W, S],
    NaN at 0): the same pass for ``predict``, one more pass (the loss pass) for ``read``. ``model``: an
    already loaded model (benchmarks) instead of ``model_dir``.
    """
    projection = Projection.load(projection_path)
    centroids = np.ascontiguousarray(np.load(centroids_path), dtype=np.float32)
    shard, model = load_for_shard(model_dir, shard_prefix, position, device=device, model=model)
    hidden_size = int(model.config.hidden_size)
    projection.check_space(resolve_layer(model, layer), position, f"shard {shard_prefix} ({projection_path})")
    if projection.out_dim(hidden_size) != centroids.shape[1]:
        raise ValueError(
            f"shard {shard_prefix}: projected width {projection.out_dim(hidden_size)} (model {model_dir}, "
            f"{projection_path}) != centroid width {centroids.shape[1]} ({centroids_path})"
        )
    k = centroids.shape[0]
    nearest = NearestCentroid(centroids, spherical=spherical)  # one index for the whole shard
    counts = np.zeros(k, np.int64)
    w, s = shard.shape
    with (
        NpyRowWriter(out_leaf, shard.shape, np.int32) as leaf_out,
        NpyRowWriter(out_dist, shard.shape, np.float16) as dist_out,
        NpyRowWriter(out_ref_loss, shard.shape, np.float16) if out_ref_loss is not None else nullcontext() as loss_out,
    ):
        for batch in stream_shard(
            model, shard, batch_size, layer=layer, position=position, need_loss=loss_out is not None
        ):
            b, _, d = batch.hidden.shape  # row t - 1 represents slot t
            x = projection.apply(batch.hidden.reshape(-1, d).cpu().numpy())
            if not np.isfinite(x).all():
                raise ValueError(
                    f"shard {shard_prefix}: NaN/inf in the hidden states of layer {layer} ({position}) "
                    f"(windows {int(batch.windows[0])}-{int(batch.windows[-1])}, model {model_dir})"
                )
            ids, d2 = nearest.search(x)
            leaf = np.full((b, s), -1, np.int32)
            leaf[:, 1:] = ids.reshape(b, s - 1)
            dist = np.full((b, s), np.nan, np.float16)
            dist[:, 1:] = d2.reshape(b, s - 1)
            leaf_out.write(leaf)
            dist_out.write(dist)
            counts += np.bincount(ids, minlength=k)
            if loss_out is not None:
                if not np.isfinite(batch.loss[:, 1:]).all():
                    raise ValueError(f"shard {shard_prefix}: non-finite token losses from {model_dir}")
                loss_out.write(batch.loss)
    return {"n_tokens": int(counts.sum()), "leaves_used": int((counts > 0).sum()), "windows": w}
