"""Mask building blocks at corpus scale: tokens per leaf, the split of leaf quotas among shards, the
random draw inside a shard's leaves, the random control mask, and a selection's summary over the tree.

Global leaf quotas (from ``balanced_leaf_quotas``) are split among shards in proportion to each
shard's tokens in the leaf (exact integers); ``leaf_policy: random`` then draws each shard's share
inside every leaf independently, one shard in memory at a time, with randomness derived from (seed,
shard index) by numpy's SeedSequence, so a shard's mask does not depend on the order shards are
processed in. Ranked policies rank over the whole leaf across shards instead
(``rhocluster.selection.stage.ranked_masks``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "shard_rng",
    "count_leaves",
    "shard_leaf_quotas",
    "select_in_shard",
    "random_mask",
    "mask_summary",
]

# Leaves handled at once in shard_leaf_quotas: bounds the [n_shards, chunk] temporaries.
_LEAF_CHUNK = 4096


def shard_rng(seed: int, shard: int) -> np.random.Generator:
    """Generator for one shard: SeedSequence(seed) child number ``shard`` (same stream as
    ``SeedSequence(seed).spawn(shard + 1)[shard]``)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(shard),)))


def count_leaves(leaf_ids: np.ndarray, k1: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Tokens per leaf in one shard: leaf_ids int [W, S] (-1 = not a target); mask: optional
    bool [W, S] to count only selected tokens. Returns int64 [k1]."""
    ids = np.asarray(leaf_ids).reshape(-1)
    keep = ids >= 0
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != np.asarray(leaf_ids).shape:
            raise ValueError(f"mask shape {m.shape} != leaf_ids shape {np.asarray(leaf_ids).shape}")
        keep &= m.reshape(-1)
    ids = ids[keep]
    if ids.size and ids.max() >= k1:
        raise ValueError(f"leaf id {int(ids.max())} >= k1={k1}")
    return np.bincount(ids, minlength=k1).astype(np.int64)


def shard_leaf_quotas(leaf_quotas: np.ndarray, shard_counts: np.ndarray) -> np.ndarray:
    """Split each leaf's quota among shards by largest remainder.

    leaf_quotas: int64 [k1]; shard_counts: int64 [n_shards, k1] tokens of each leaf per shard.
    Shard s gets floor(q * n_s / N) of leaf c, plus one for the shards with the largest
    fractional parts (ties to the lower shard index) until the leaf's quota is met. Never more
    than the shard has. Returns int64 [n_shards, k1]; columns sum to leaf_quotas.
    """
    q = np.asarray(leaf_quotas)
    counts = np.asarray(shard_counts)
    if q.ndim != 1 or counts.ndim != 2 or counts.shape[1] != q.shape[0]:
        raise ValueError(f"need leaf_quotas [k1] and shard_counts [n_shards, k1]; got {q.shape} and {counts.shape}")
    if not (np.issubdtype(q.dtype, np.integer) and np.issubdtype(counts.dtype, np.integer)):
        raise ValueError("leaf_quotas and shard_counts must be integer arrays")
    q = q.astype(np.int64)
    counts = counts.astype(np.int64)
    if (q < 0).any() or (counts < 0).any():
        raise ValueError("leaf_quotas and shard_counts must be non-negative")
    n_shards, k1 = counts.shape
    out = np.zeros((n_shards, k1), dtype=np.int64)
    if n_shards == 0 or k1 == 0:
        if q.sum():
            raise ValueError("non-zero quotas but no shards")
        return out
    for start in range(0, k1, _LEAF_CHUNK):
        sl = slice(start, start + _LEAF_CHUNK)
        qc, nc = q[sl], counts[:, sl]
        tot = nc.sum(axis=0)
        if (qc > tot).any():
            c = start + int(np.flatnonzero(qc > tot)[0])
            raise ValueError(f"leaf {c}: quota {int(q[c])} exceeds its {int(tot[c - start])} tokens over all shards")
        safe_tot = np.maximum(tot, 1)
        if int(qc.max(initial=0)) * int(nc.max(initial=0)) < 2**62:
            num = qc[None, :] * nc
            base, rem = num // safe_tot, num % safe_tot
        else:
            # q * n would overflow int64: exact Python integers (only for absurd leaf sizes).
            num = qc.astype(object)[None, :] * nc.astype(object)
            base = (num // safe_tot.astype(object)).astype(np.int64)
            rem = (num % safe_tot.astype(object)).astype(np.float64)  # order only
        left = qc - base.sum(axis=0)
        # rem / tot is the fractional part; tot is shared within a column, so rem orders it.
        order = np.argsort(-rem, axis=0, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(n_shards)[:, None].repeat(order.shape[1], axis=1), axis=0)
        out[:, sl] = base + (rank < left[None, :])
    return out


def select_in_shard(leaf_ids: np.ndarray, quotas: np.ndarray, *, seed: int = 0, shard: int = 0) -> np.ndarray:
    """Mask of one shard with exactly ``quotas[c]`` tokens of every leaf c, uniformly at random inside
    each leaf (RNG from ``shard_rng(seed, shard)``); the balanced masks' ``leaf_policy: random``.

    leaf_ids: int [W, S] leaf of each position (-1 = not a training target, never selected);
    quotas: int64 [k1] for this shard. Returns bool [W, S]. (The ranked policies rank over the whole
    leaf across shards instead: ``rhocluster.selection.stage.ranked_masks``.)
    """
    ids = np.asarray(leaf_ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"leaf_ids must be integer, got dtype {ids.dtype}")
    q = np.asarray(quotas)
    if q.ndim != 1 or not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"quotas must be a 1-D integer array, got {q.dtype}{q.shape}")
    q = q.astype(np.int64)
    k1 = q.shape[0]
    flat = ids.reshape(-1)
    if flat.size and (flat.min() < -1 or flat.max() >= k1):
        raise ValueError(f"leaf_ids must lie in [-1, {k1})")
    pos = np.flatnonzero(flat >= 0)
    leaf = flat[pos].astype(np.int64)
    have = np.bincount(leaf, minlength=k1)
    if (q < 0).any() or (q > have).any():
        c = int(np.flatnonzero((q < 0) | (q > have))[0])
        raise ValueError(f"leaf {c}: quota {int(q[c])} but the shard has {int(have[c])} tokens in it")
    key = shard_rng(seed, shard).random(pos.size)
    order = np.lexsort((pos, key, leaf))  # by leaf, then the random key
    leaf_sorted = leaf[order]
    rank = np.arange(order.size) - np.searchsorted(leaf_sorted, leaf_sorted, side="left")
    chosen = pos[order[rank < q[leaf_sorted]]]
    mask = np.zeros(flat.size, dtype=bool)
    mask[chosen] = True
    return mask.reshape(ids.shape)


def random_mask(valid: np.ndarray, budget: float, seed: int, *, shard: int = 0) -> np.ndarray:
    """Control mask: exactly round(budget * valid.sum()) True among the True positions of
    ``valid`` (bool [W, S]), uniformly at random with ``shard_rng(seed, shard)``. Returns bool
    [W, S]."""
    v = np.asarray(valid, dtype=bool)
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"budget must be in [0, 1], got {budget}")
    pos = np.flatnonzero(v.reshape(-1))
    n_keep = int(round(budget * pos.size))
    chosen = shard_rng(seed, shard).choice(pos, size=n_keep, replace=False) if n_keep else pos[:0]
    mask = np.zeros(v.size, dtype=bool)
    mask[chosen] = True
    return mask.reshape(v.shape)


def _entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of the distribution proportional to ``counts``."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def mask_summary(
    leaf_counts: np.ndarray, leaf_kept: np.ndarray, ancestors: np.ndarray, *, per_cluster: bool = True
) -> dict:
    """Summary of a selection over the cluster tree.

    leaf_counts: int64 [k1] corpus tokens per leaf; leaf_kept: int64 [k1] selected tokens per
    leaf (sum ``count_leaves(..., mask=...)`` over shards); ancestors: int [k1, L]. For every
    level: cluster counts before/after, kept fraction per cluster (None where empty), entropy
    of the cluster distribution before and after in nats and normalised by ln(number of
    non-empty clusters before selection) — Pielou's evenness, 1 = uniform over the clusters
    that have tokens. JSON-serialisable.
    """
    before_leaf = np.asarray(leaf_counts).astype(np.int64)
    after_leaf = np.asarray(leaf_kept).astype(np.int64)
    anc = np.asarray(ancestors).astype(np.int64)
    k1 = before_leaf.shape[0]
    if after_leaf.shape != (k1,) or anc.ndim != 2 or anc.shape[0] != k1:
        raise ValueError("leaf_counts [k1], leaf_kept [k1] and ancestors [k1, L] must agree")
    if (after_leaf > before_leaf).any() or (after_leaf < 0).any():
        raise ValueError("leaf_kept must lie in [0, leaf_counts]")
    total, kept = int(before_leaf.sum()), int(after_leaf.sum())
    levels = []
    for j in range(anc.shape[1]):
        n_clusters = int(anc[:, j].max()) + 1 if k1 else 0
        before = np.zeros(n_clusters, dtype=np.int64)
        after = np.zeros(n_clusters, dtype=np.int64)
        np.add.at(before, anc[:, j], before_leaf)
        np.add.at(after, anc[:, j], after_leaf)
        nonempty = int((before > 0).sum())
        norm = math.log(nonempty) if nonempty > 1 else 0.0
        h_before, h_after = _entropy(before), _entropy(after)
        entry = {
            "level": j + 1,
            "n_clusters": n_clusters,
            "n_nonempty_before": nonempty,
            "n_nonempty_after": int((after > 0).sum()),
            "entropy_before_nats": h_before,
            "entropy_after_nats": h_after,
            "entropy_before_normalised": h_before / norm if norm else 0.0,
            "entropy_after_normalised": h_after / norm if norm else 0.0,
        }
        frac = np.divide(after, before, out=np.full(n_clusters, np.nan), where=before > 0)
        finite = frac[before > 0]
        entry["kept_fraction_min"] = float(finite.min()) if finite.size else None
        entry["kept_fraction_max"] = float(finite.max()) if finite.size else None
        if per_cluster:
            entry["count_before"] = before.tolist()
            entry["count_after"] = after.tolist()
            entry["kept_fraction"] = [None if np.isnan(f) else float(f) for f in frac]
        levels.append(entry)
    return {
        "total_tokens": total,
        "kept_tokens": kept,
        "kept_fraction": kept / total if total else 0.0,
        "levels": levels,
    }
