"""Clustering-based filtering of the corpus by fixed excess loss: the two static masks that read both
the cluster tree's leaves and the fixed excess loss (base - reference), each one factor away from the
corpus-wide top excess loss (``excess_static``).

- ``cluster_filter``: every leaf is scored by the mean fixed excess loss of its tokens; whole leaves are
  kept best-first until the budget, the last leaf partly, by its tokens' excess loss. What is kept is
  decided per cluster, not per token (clustering-based data *filtering*).
- ``excess_smoothed``: each token's fixed excess loss is shrunk toward its leaf's mean,
  ``(1 - w) * e + w * mean_leaf(e)``, then the corpus-wide top budget is kept: the leaf denoises a
  noisy per-token score (w = 0 is excess_static, w = 1 ranks whole leaves as cluster_filter does).

Both rank over the whole corpus with the exact grouped select of :mod:`rhocluster.selection.topk`
(ties in corpus order), one shard in memory at a time, so every mask keeps exactly its budget.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rhocluster.data.shards import Shard, load_aligned
from rhocluster.selection.stage import fixed_excess, ranked_masks, save_masks, save_summary

__all__ = ["LEAF_EXCESS", "filter_quotas", "leaf_excess_means", "select_leaf_excess_masks", "smoothed_excess"]

LEAF_EXCESS = ("cluster_filter", "excess_smoothed")  # the kinds this module writes


def leaf_excess_means(leaves: Sequence[np.ndarray], excess: Sequence[np.ndarray], k1: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens per leaf (int64 [k1]) and the mean fixed excess loss of each leaf (float64 [k1], NaN where
    empty), over every shard's target tokens (leaf id >= 0)."""
    counts = np.zeros(k1, np.int64)
    sums = np.zeros(k1, np.float64)
    for leaf, e in zip(leaves, excess):
        ids = np.asarray(leaf).reshape(-1)
        pos = ids >= 0
        counts += np.bincount(ids[pos], minlength=k1)
        sums += np.bincount(ids[pos], weights=np.asarray(e, np.float64).reshape(-1)[pos], minlength=k1)
    means = np.divide(sums, counts, out=np.full(k1, np.nan), where=counts > 0)
    return counts, means


def filter_quotas(counts: np.ndarray, means: np.ndarray, total: int) -> np.ndarray:
    """Per-leaf quotas of cluster_filter: leaves by mean excess, highest first (ties: lower leaf id), each
    kept whole until ``total`` tokens; the leaf at the cut gets the remainder. int64 [k1], sums to total."""
    counts = np.asarray(counts, np.int64)
    if not 0 <= total <= counts.sum():
        raise ValueError(f"budget of {total} tokens outside [0, {int(counts.sum())}]")
    filled = np.where(counts > 0, np.asarray(means, np.float64), -np.inf)
    order = np.lexsort((np.arange(len(counts)), -filled))
    before = np.concatenate([[0], np.cumsum(counts[order])[:-1]])  # tokens kept before each leaf
    quotas = np.zeros(len(counts), np.int64)
    quotas[order] = np.clip(total - before, 0, counts[order])
    return quotas


def smoothed_excess(excess: np.ndarray, leaf: np.ndarray, means: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * excess + weight * mean of its leaf`` at target positions (leaf >= 0); float32 [W, S]."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"shrinkage weight must lie in [0, 1], got {weight}")
    leaf = np.asarray(leaf)
    out = np.asarray(excess, np.float64).copy()
    pos = leaf >= 0
    out[pos] = (1.0 - weight) * out[pos] + weight * np.asarray(means)[leaf[pos]]
    return out.astype(np.float32)


def select_leaf_excess_masks(
    kind: str,
    shard_prefixes: Sequence[str],
    leaf_paths: Sequence[str],
    base_loss: Sequence[str],
    ref_loss: Sequence[str],
    out_masks: Sequence[str],
    out_summary: str,
    *,
    budget: float,
    shrinkage: float = 0.5,
) -> dict:
    """Write the per-shard uint8 masks and summary of a ``cluster_filter`` or ``excess_smoothed`` row
    (``shrinkage``: its weight w). Keeps exactly ``round(budget x target tokens)`` tokens."""
    if kind not in LEAF_EXCESS:
        raise ValueError(f"leaf-excess mask kind {kind!r}; expected one of {', '.join(LEAF_EXCESS)}")
    shards = [Shard(p) for p in shard_prefixes]
    leaves = [load_aligned(p, s.shape, np.int32, "leaf ids") for p, s in zip(leaf_paths, shards)]
    for path, s, leaf in zip(leaf_paths, shards, leaves):
        if (np.asarray(leaf[:, 0]) != -1).any() or (np.asarray(leaf[:, 1:]) < 0).any():
            raise ValueError(f"leaf ids {path}: expected -1 exactly at position 0 of every window of {s.prefix}")
    k1 = int(max(int(np.asarray(leaf).max(initial=-1)) for leaf in leaves)) + 1

    def excess(i: int) -> np.ndarray:
        return fixed_excess(base_loss[i], ref_loss[i], shards[i].shape)

    counts, means = leaf_excess_means(leaves, (excess(i) for i in range(len(shards))), k1)
    total = int(round(budget * counts.sum()))
    if kind == "cluster_filter":
        quotas = filter_quotas(counts, means, total)
        masks = ranked_masks(shards, lambda i: leaves[i], excess, quotas)
    else:
        quotas = np.array([total], np.int64)
        masks = ranked_masks(
            shards,
            lambda i: np.where(np.asarray(leaves[i]) >= 0, 0, -1),
            lambda i: smoothed_excess(excess(i), leaves[i], means, shrinkage),
            quotas,
        )
    kept, label_counts, excess_stats = save_masks(masks, shards, leaves, k1, out_masks, excess)
    whole = int(((kept == counts) & (counts > 0)).sum())
    summary = {
        "policy": kind,
        "ranking": "whole leaves by mean fixed excess loss" if kind == "cluster_filter" else "over the whole corpus",
        "budget": budget,
        "tokens": int(counts.sum()),
        "kept": int(kept.sum()),
        "kept_fraction": float(kept.sum() / max(1, counts.sum())),
        "leaves": int((counts > 0).sum()),
        "leaves_kept_whole": whole,
        "leaves_kept_partly": int(((kept > 0) & (kept < counts)).sum()),
        "leaves_dropped": int(((kept == 0) & (counts > 0)).sum()),
    }
    if kind == "excess_smoothed":
        summary["shrinkage"] = shrinkage
    return save_summary(out_summary, summary, label_counts, excess_stats)


def cluster_filter_kind(files, settings) -> dict:
    """``cluster_filter`` (rhocluster.selection.kinds)."""
    return select_leaf_excess_masks(
        "cluster_filter", files.prefixes, files.leaves, files.base_loss, files.ref_loss, files.out_masks,
        files.out_summary, budget=settings["budget"],
    )


def excess_smoothed_kind(files, settings) -> dict:
    """``excess_smoothed`` (rhocluster.selection.kinds) with the row's ``shrinkage``."""
    return select_leaf_excess_masks(
        "excess_smoothed", files.prefixes, files.leaves, files.base_loss, files.ref_loss, files.out_masks,
        files.out_summary, budget=settings["budget"], shrinkage=settings["shrinkage"],
    )
