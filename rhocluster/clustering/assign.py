"""assign stage: every token's nearest level-1 centroid, from a streaming pass of the reference model.

The representation of a token is the one the embedding sample was drawn from (``scoring.layer`` and
``scoring.position``, :func:`~rhocluster.scoring.forward.forward_windows`); the projection file
records that space and a mismatch is refused, so the tree and the assignment never live in different
spaces.

Embeddings of the whole corpus never touch disk: each batch's hidden states are projected and searched
(faiss) in memory, and only int32 leaf ids and float16 distances are written, batch by batch
(:class:`~rhocluster.scoring.rows.NpyRowWriter`), so memory is bounded by the batch however large
the shard. The LM head is not run unless the reference loss is wanted too. Every cluster tree of the run
(one per training seed, :mod:`rhocluster.clustering.trees`) is searched from the same pass: at scale the
forward pass dominates and a nearest-centroid search is cheap.

Fused pass (``scoring.fused_pass`` in the workflow): the same job can also write the reference model's
per-token loss (``out_ref_loss``): at the cost of the LM head and the layers above ``scoring.layer``
for ``predict`` (one pass), of a second pass over every window for ``read``. That file is a by-product of
a job that depends on the level-1 clustering, so the workflow lets only the cluster variants read it
(``cluster_excess``); Rho-1 and everything else keep reading ``score_reference``'s loss, which depends on
no clustering parameter. See ``rules/scoring.smk`` for when the switch saves a pass.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rhocluster.clustering.kmeans import NearestCentroid
from rhocluster.scoring.forward import Layer, load_for_shard, resolve_layer, stream_shard
from rhocluster.scoring.projection import Projection
from rhocluster.scoring.rows import NpyRowWriter


@dataclass(frozen=True)
class TreeFiles:
    """One cluster tree's inputs (projection, level-1 centroids) and outputs (leaf ids, distances) for a shard."""

    projection: Path
    centroids: Path
    leaf: Path
    dist: Path


def assign_shard(
    model_dir: Path,
    shard_prefix: Path,
    projection_path: Path,
    centroids_path: Path,
    out_leaf: Path,
    out_dist: Path,
    **kwargs,
) -> dict:
    """:func:`assign_trees` for one tree; returns its stats."""
    tree = TreeFiles(Path(projection_path), Path(centroids_path), Path(out_leaf), Path(out_dist))
    return assign_trees(model_dir, shard_prefix, [tree], **kwargs)[0]


def assign_trees(
    model_dir: Path,
    shard_prefix: Path,
    trees: Sequence[TreeFiles],
    *,
    out_ref_loss: Path | None = None,
    batch_size: int = 32,
    layer: Layer = "middle",
    position: str = "read",
    spherical: bool = False,
    device: str | None = None,
    model=None,
) -> list[dict]:
    """Place every token of a shard in each tree: leaf ids int32 [W, S] (-1 at position 0) and distances
    float16 [W, S] (NaN at 0) per tree, from one forward pass whatever the number of trees.

    Distances are squared L2 to the leaf centroid, or ``1 - cos`` when ``spherical``, in the tree's
    projected space. ``layer`` and ``position`` choose the representation (as for the sample; checked
    against each projection's record). ``out_ref_loss``: also write the model's per-token loss (float16
    [W, S], NaN at 0): the same pass for ``predict``, one more pass (the loss pass) for ``read``.
    ``model``: an already loaded model (benchmarks) instead of ``model_dir``. Returns one stats dict per tree.
    """
    if not trees:
        raise ValueError(f"shard {shard_prefix}: no cluster tree to assign to")
    shard, model = load_for_shard(model_dir, shard_prefix, position, device=device, model=model)
    hidden_size = int(model.config.hidden_size)
    hidden_index = resolve_layer(model, layer)
    searches = []
    for tree in trees:
        projection = Projection.load(tree.projection)
        centroids = np.ascontiguousarray(np.load(tree.centroids), dtype=np.float32)
        projection.check_space(hidden_index, position, f"shard {shard_prefix} ({tree.projection})")
        if projection.out_dim(hidden_size) != centroids.shape[1]:
            raise ValueError(
                f"shard {shard_prefix}: projected width {projection.out_dim(hidden_size)} (model {model_dir}, "
                f"{tree.projection}) != centroid width {centroids.shape[1]} ({tree.centroids})"
            )
        # one index per tree for the whole shard
        searches.append((projection, NearestCentroid(centroids, spherical=spherical), np.zeros(len(centroids), np.int64)))
    w, s = shard.shape
    with ExitStack() as stack:
        writers = [
            (
                stack.enter_context(NpyRowWriter(tree.leaf, shard.shape, np.int32)),
                stack.enter_context(NpyRowWriter(tree.dist, shard.shape, np.float16)),
            )
            for tree in trees
        ]
        loss_out = (
            stack.enter_context(NpyRowWriter(out_ref_loss, shard.shape, np.float16)) if out_ref_loss is not None else None
        )
        for batch in stream_shard(
            model, shard, batch_size, layer=layer, position=position, need_loss=loss_out is not None
        ):
            b, _, d = batch.hidden.shape  # row t - 1 represents slot t
            hidden = batch.hidden.reshape(-1, d).cpu().numpy()
            for (projection, nearest, counts), (leaf_out, dist_out) in zip(searches, writers):
                x = projection.apply(hidden)
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
                counts += np.bincount(ids, minlength=len(counts))
            if loss_out is not None:
                if not np.isfinite(batch.loss[:, 1:]).all():
                    raise ValueError(f"shard {shard_prefix}: non-finite token losses from {model_dir}")
                loss_out.write(batch.loss)
    return [
        {"n_tokens": int(counts.sum()), "leaves_used": int((counts > 0).sum()), "windows": w}
        for _, _, counts in searches
    ]
