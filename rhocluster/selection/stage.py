"""select_tokens stage: static token masks of the cluster variants and the random control, shard by shard."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rhocluster.clustering.hierarchy import load_hierarchy
from rhocluster.data.atomic import save_json, save_npy
from rhocluster.data.shards import Shard, load_aligned
from rhocluster.selection.balanced import balanced_leaf_quotas
from rhocluster.selection.masks import count_leaves, mask_summary, random_mask, select_in_shard, shard_leaf_quotas


def _scores(policy: str, i: int, shape, base_loss, ref_loss, dist) -> np.ndarray | None:
    """Per-token ranking key of a leaf policy for shard ``i`` (float32 [W, S], NaN at position 0)."""
    if policy == "excess_loss":
        base = load_aligned(base_loss[i], shape, np.float16, "base loss").astype(np.float32)
        ref = load_aligned(ref_loss[i], shape, np.float16, "reference loss").astype(np.float32)
        return base - ref  # excess loss of the model we start CPT from over the reference
    if policy == "closest":
        return load_aligned(dist[i], shape, np.float16, "distance").astype(np.float32)
    return None


def select_cluster_masks(
    shard_prefixes: Sequence[str],
    leaf_paths: Sequence[str],
    level_dirs: Sequence[str],
    out_masks: Sequence[str],
    out_summary: str,
    *,
    ratio: float,
    policy: str,
    seed: int,
    base_loss: Sequence[str] | None = None,
    ref_loss: Sequence[str] | None = None,
    dist: Sequence[str] | None = None,
) -> dict:
    """Balanced hierarchical sampling (Vo et al.) of ``ratio`` of all target tokens into per-shard uint8 masks.

    Pass 1 counts tokens per leaf and shard; the global per-leaf quotas come from water-filling down
    the cluster tree and are split among shards exactly; pass 2 fills each shard's quotas by ``policy``.
    Only one shard's arrays are in memory at a time.
    """
    levels, ancestors = load_hierarchy([Path(d) for d in level_dirs])
    k1 = levels[0].k
    shards = [Shard(p) for p in shard_prefixes]
    leaves = [load_aligned(p, s.shape, np.int32, "leaf ids") for p, s in zip(leaf_paths, shards)]
    for path, s, leaf in zip(leaf_paths, shards, leaves):
        if (np.asarray(leaf[:, 0]) != -1).any() or (np.asarray(leaf[:, 1:]) < 0).any():
            raise ValueError(f"leaf ids {path}: expected -1 exactly at position 0 of every window of {s.prefix}")
    shard_counts = np.stack([count_leaves(leaf, k1) for leaf in leaves])
    leaf_counts = shard_counts.sum(axis=0)
    total = int(round(ratio * leaf_counts.sum()))
    leaf_quotas = balanced_leaf_quotas(leaf_counts, ancestors, total)
    per_shard = shard_leaf_quotas(leaf_quotas, shard_counts)
    kept = np.zeros(k1, np.int64)
    label_counts: dict[str, list[int]] = {}
    for i, (s, leaf) in enumerate(zip(shards, leaves)):
        scores = _scores(policy, i, s.shape, base_loss, ref_loss, dist)
        mask = select_in_shard(np.asarray(leaf), per_shard[i], policy, scores=scores, seed=seed, shard=i)
        save_npy(out_masks[i], mask.astype(np.uint8))
        kept += count_leaves(leaf, k1, mask=mask)
        if s.meta.has_labels:
            lab = s.labels()
            valid = s.target_mask()
            for name, arr in (("valid", lab[valid]), ("kept", lab[mask])):
                label_counts[name] = (np.asarray(label_counts.get(name, np.zeros(256, int))) + np.bincount(arr, minlength=256)).tolist()
    summary = {
        "policy": policy,
        "ratio": ratio,
        "tokens": int(leaf_counts.sum()),
        "kept": int(kept.sum()),
        "kept_fraction": float(kept.sum() / max(1, leaf_counts.sum())),
        "levels": mask_summary(leaf_counts, kept, ancestors),
    }
    if label_counts:
        from rhocluster.corpus.labels import LABELS

        summary["kept_fraction_by_label"] = {
            name: (label_counts["kept"][j] / label_counts["valid"][j] if label_counts["valid"][j] else None)
            for j, name in enumerate(LABELS)
        }
    save_json(out_summary, summary)
    return summary


def write_random_mask(shard_prefix: str, out_mask: str, ratio: float, seed: int, shard_index: int) -> float:
    """The control: ``ratio`` of the shard's target tokens uniformly at random (uint8 [W, S]); returns the kept fraction."""
    shard = Shard(shard_prefix)
    valid = shard.target_mask()
    mask = random_mask(valid, ratio, seed, shard=shard_index)
    save_npy(out_mask, mask.astype(np.uint8))
    return float(mask.sum() / valid.sum())
