"""Static token masks, shard by shard: balanced sampling of the cluster tree, the corpus-wide top fixed
excess loss, and the random control."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from rhocluster.clustering.hierarchy import load_hierarchy
from rhocluster.common.atomic import save_json, save_npy
from rhocluster.data.shards import Shard, load_aligned
from rhocluster.selection.balanced import balanced_leaf_quotas
from rhocluster.selection.masks import count_leaves, mask_summary, random_mask, select_in_shard, shard_leaf_quotas
from rhocluster.selection.topk import group_thresholds, order_keys, top_mask


def _scores(policy: str, i: int, shape, base_loss, ref_loss, dist) -> np.ndarray | None:
    """Per-token ranking score of shard ``i``, higher kept first (float32 [W, S]); None for random."""
    if policy == "excess_loss":
        return fixed_excess(base_loss[i], ref_loss[i], shape)
    if policy == "closest":
        return -load_aligned(dist[i], shape, np.float16, "distance").astype(np.float32)
    return None


def fixed_excess(base_loss: str, ref_loss: str, shape: tuple[int, int]) -> np.ndarray:
    """Excess loss of the model CPT starts from over the reference (base - reference), float32 [W, S]."""
    base = load_aligned(base_loss, shape, np.float16, "base loss").astype(np.float32)
    ref = load_aligned(ref_loss, shape, np.float16, "reference loss").astype(np.float32)
    return base - ref


def count_labels(shard: Shard, mask: np.ndarray, counts: dict[str, np.ndarray]) -> None:
    """Add the shard's target and kept tokens per ground-truth label to ``counts`` (labelled corpora only)."""
    if shard.meta.has_labels:
        lab = shard.labels()
        for name, arr in (("valid", lab[shard.target_mask()]), ("kept", lab[mask])):
            counts[name] = counts.get(name, np.zeros(256, np.int64)) + np.bincount(arr, minlength=256)


def label_fractions(counts: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Kept fraction per label from :func:`count_labels`' counts (None for a label with no tokens)."""
    from rhocluster.corpus.labels import LABELS

    return {
        name: (float(counts["kept"][j] / counts["valid"][j]) if counts["valid"][j] else None)
        for j, name in enumerate(LABELS)
    }


class ExcessStats:
    """Fixed excess loss of the kept and of the dropped target tokens, accumulated shard by shard into
    fixed histograms (bins of 0.01 nats over [-30, 30], the tails clipped to the end bins): mean and
    quantiles that need no labels and no second pass over the corpus."""

    EDGES = np.linspace(-30.0, 30.0, 6001)
    QUANTILES = (0.1, 0.5, 0.9)

    def __init__(self) -> None:
        self.hist = {part: np.zeros(len(self.EDGES) - 1, np.int64) for part in ("kept", "dropped")}
        self.sums = {"kept": 0.0, "dropped": 0.0}

    def add(self, excess: np.ndarray, valid: np.ndarray, mask: np.ndarray) -> None:
        """Add a shard: ``excess`` float [W, S], ``valid`` its target positions, ``mask`` the kept ones."""
        for part, sel in (("kept", valid & mask), ("dropped", valid & ~mask)):
            x = np.asarray(excess, np.float64)[sel]
            self.sums[part] += float(x.sum())
            self.hist[part] += np.histogram(np.clip(x, self.EDGES[0], self.EDGES[-1]), self.EDGES)[0]

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """``{"kept"|"dropped": {"tokens", "mean", "q10", "q50", "q90"}}`` (None where no tokens)."""
        out: dict[str, dict[str, float | int | None]] = {}
        centres = (self.EDGES[:-1] + self.EDGES[1:]) / 2
        for part, hist in self.hist.items():
            n = int(hist.sum())
            row: dict[str, float | int | None] = {"tokens": n, "mean": self.sums[part] / n if n else None}
            cum = np.cumsum(hist)
            for q in self.QUANTILES:
                row[f"q{round(100 * q)}"] = round(float(centres[np.searchsorted(cum, q * n)]), 3) if n else None
            out[part] = row
        return out


def save_summary(
    path: str, summary: dict, label_counts: dict[str, np.ndarray], excess_stats: ExcessStats | None = None
) -> dict:
    """Add what every mask summary records where it has it (the fixed excess loss of kept and dropped
    tokens, the kept fraction per label), write it as JSON and return it."""
    if excess_stats is not None:
        summary["excess_loss"] = excess_stats.summary()
    if label_counts:
        summary["kept_fraction_by_label"] = label_fractions(label_counts)
    save_json(path, summary)
    return summary


def save_masks(
    masks: Iterable[np.ndarray],
    shards: Sequence[Shard],
    leaves: Sequence[np.ndarray],
    k1: int,
    out_masks: Sequence[str],
    excess: Callable[[int], np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], ExcessStats | None]:
    """Write each shard's mask (uint8) as it comes; return the kept tokens per leaf, per label and, given
    ``excess(i)`` (shard i's fixed excess loss), the fixed excess loss of the kept and dropped tokens."""
    kept = np.zeros(k1, np.int64)
    label_counts: dict[str, np.ndarray] = {}
    stats = ExcessStats() if excess is not None else None
    for i, mask in enumerate(masks):
        save_npy(out_masks[i], mask.astype(np.uint8))
        kept += count_leaves(leaves[i], k1, mask=mask)
        count_labels(shards[i], mask, label_counts)
        if stats is not None:
            stats.add(excess(i), shards[i].target_mask(), mask)
    return kept, label_counts, stats


def ranked_masks(
    shards: Sequence[Shard],
    groups: Callable[[int], np.ndarray],
    scores: Callable[[int], np.ndarray],
    quotas: np.ndarray,
) -> Iterator[np.ndarray]:
    """Exactly ``quotas[g]`` highest-scoring target tokens of every group g, ranked over the whole corpus.

    ``groups(i)``: int [W, S] group of each token of shard i (-1 = not a target); ``scores(i)``: float32
    [W, S]. Yields each shard's bool [W, S] mask in turn (ties in corpus order; see ``selection.topk``).
    """

    def keys(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = np.asarray(groups(i)).reshape(-1)
        pos = np.flatnonzero(g >= 0)
        sc = np.asarray(scores(i)).reshape(-1)[pos]
        if not np.isfinite(sc).all():
            raise ValueError(f"{shards[i].prefix}: non-finite ranking score at a target position")
        return pos, g[pos], order_keys(sc)

    thresholds = group_thresholds(lambda: (keys(i)[1:] for i in range(len(shards))), quotas)
    ties_taken = np.zeros(len(quotas), dtype=np.int64)
    for i, shard in enumerate(shards):
        pos, g, k = keys(i)
        mask = np.zeros(shard.shape[0] * shard.shape[1], dtype=bool)
        mask[pos[top_mask(g, k, thresholds, ties_taken)]] = True
        yield mask.reshape(shard.shape)


def select_cluster_masks(
    shard_prefixes: Sequence[str],
    leaf_paths: Sequence[str],
    level_dirs: Sequence[str],
    out_masks: Sequence[str],
    out_summary: str,
    *,
    budget: float,
    policy: str,
    seed: int,
    base_loss: Sequence[str] | None = None,
    ref_loss: Sequence[str] | None = None,
    dist: Sequence[str] | None = None,
) -> dict:
    """Balanced hierarchical sampling (Vo et al.) of ``budget`` of all target tokens into per-shard uint8 masks.

    Pass 1 counts tokens per leaf and shard; the global per-leaf quotas come from water-filling down
    the cluster tree. ``policy`` random splits each leaf's quota among shards exactly (largest
    remainder) and draws inside each shard; the scored policies (excess_loss: highest fixed excess loss
    first; closest: nearest the centroid first) rank over the whole leaf across all shards. Only one
    shard's arrays are in memory at a time.
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
    total = int(round(budget * leaf_counts.sum()))
    leaf_quotas = balanced_leaf_quotas(leaf_counts, ancestors, total)
    if policy == "random":
        per_shard = shard_leaf_quotas(leaf_quotas, shard_counts)
        masks: Iterable[np.ndarray] = (
            select_in_shard(np.asarray(leaf), per_shard[i], seed=seed, shard=i) for i, leaf in enumerate(leaves)
        )
    else:
        masks = ranked_masks(
            shards,
            lambda i: leaves[i],
            lambda i: _scores(policy, i, shards[i].shape, base_loss, ref_loss, dist),
            leaf_quotas,
        )
    excess = (lambda i: fixed_excess(base_loss[i], ref_loss[i], shards[i].shape)) if base_loss and ref_loss else None
    kept, label_counts, excess_stats = save_masks(masks, shards, leaves, k1, out_masks, excess)
    summary = {
        "policy": policy,
        "ranking": "random inside each (leaf, shard) cell" if policy == "random" else "over the whole leaf",
        "budget": budget,
        "tokens": int(leaf_counts.sum()),
        "kept": int(kept.sum()),
        "kept_fraction": float(kept.sum() / max(1, leaf_counts.sum())),
        "levels": mask_summary(leaf_counts, kept, ancestors),
    }
    return save_summary(out_summary, summary, label_counts, excess_stats)


def select_excess_static_masks(
    shard_prefixes: Sequence[str],
    base_loss: Sequence[str],
    ref_loss: Sequence[str],
    out_masks: Sequence[str],
    out_summary: str,
    *,
    budget: float,
) -> dict:
    """The corpus-wide top ``budget`` of target tokens by fixed excess loss (base - reference), as
    per-shard uint8 masks: the static counterpart of Rho-1's SLM, with no clustering."""
    shards = [Shard(p) for p in shard_prefixes]

    def groups(i: int) -> np.ndarray:
        return np.where(shards[i].target_mask(), 0, -1)

    n_valid = sum(int(s.target_mask().sum()) for s in shards)
    quota = np.array([int(round(budget * n_valid))], dtype=np.int64)
    masks = ranked_masks(shards, groups, lambda i: fixed_excess(base_loss[i], ref_loss[i], shards[i].shape), quota)
    kept = 0
    label_counts: dict[str, np.ndarray] = {}
    threshold = float("inf")
    excess_stats = ExcessStats()
    for i, mask in enumerate(masks):
        save_npy(out_masks[i], mask.astype(np.uint8))
        kept += int(mask.sum())
        count_labels(shards[i], mask, label_counts)
        excess = fixed_excess(base_loss[i], ref_loss[i], shards[i].shape)
        excess_stats.add(excess, shards[i].target_mask(), mask)
        if mask.any():
            threshold = min(threshold, float(excess[mask].min()))
    summary = {
        "policy": "excess_static",
        "ranking": "over the whole corpus",
        "budget": budget,
        "tokens": n_valid,
        "kept": kept,
        "kept_fraction": kept / max(1, n_valid),
        "threshold_excess_loss": threshold,
    }
    return save_summary(out_summary, summary, label_counts, excess_stats)


# --- the mask kinds' entry points (rhocluster.selection.kinds) ---------------------------------------


def random_kind(files, settings) -> dict:
    """``random``: every shard's uniform random budget, drawn with (seed, shard index)."""
    shards = [Shard(p) for p in files.prefixes]
    kept = total = 0
    label_counts: dict[str, np.ndarray] = {}
    for i, (shard, out) in enumerate(zip(shards, files.out_masks)):
        valid = shard.target_mask()
        mask = random_mask(valid, settings["budget"], settings["seed"], shard=i)
        save_npy(out, mask.astype(np.uint8))
        kept += int(mask.sum())
        total += int(valid.sum())
        count_labels(shard, mask, label_counts)
    summary = {
        "policy": "random",
        "ranking": "uniform at random inside each shard",
        "budget": settings["budget"],
        "tokens": total,
        "kept": kept,
        "kept_fraction": kept / max(1, total),
    }
    return save_summary(files.out_summary, summary, label_counts)


def excess_static_kind(files, settings) -> dict:
    """``excess_static``: :func:`select_excess_static_masks`."""
    return select_excess_static_masks(
        files.prefixes, files.base_loss, files.ref_loss, files.out_masks, files.out_summary, budget=settings["budget"]
    )


def balanced_kind(files, settings) -> dict:
    """``balanced``: :func:`select_cluster_masks` with the row's ``leaf_policy``."""
    return select_cluster_masks(
        files.prefixes, files.leaves, files.levels, files.out_masks, files.out_summary,
        budget=settings["budget"], policy=settings["leaf_policy"], seed=settings["seed"],
        base_loss=files.base_loss or None, ref_loss=files.ref_loss or None, dist=files.dist or None,
    )
