"""Balanced top-down sampling of the cluster tree (Vo et al. 2024), as exact integer quotas.

At every node the node's quota N is split among its children of sizes s_i by water filling:
a_i = min(x, s_i) with the cap x chosen so that sum a_i = N. With integers, x is the largest
integer cap whose allocation does not exceed N, and the few units left over (the fractional
part of the real cap) go one each to the largest children still above the cap, ties to the
lower index. Vo et al. hand these out at random; deterministic is reproducible and, by giving
them to the largest children, the kindest to the children that have tokens to spare.
"""

from __future__ import annotations

import numpy as np

__all__ = ["water_fill", "water_fill_segments", "balanced_leaf_quotas"]


def _as_counts(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integer counts, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if (a < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return a


def water_fill_segments(sizes: np.ndarray, segments: np.ndarray, quotas: np.ndarray) -> np.ndarray:
    """Water filling in many groups at once (one vectorised binary search for all groups).

    sizes: int64 [n] child sizes; segments: int64 [n] group id of each child in [0, G), any
    order; quotas: int64 [G] quota of each group. Returns int64 [n] allocation with, per group
    g, sum == min(quotas[g], sizes of g summed) and the rule in the module docstring.
    """
    sizes = _as_counts(sizes, "sizes")
    quotas = _as_counts(quotas, "quotas")
    seg = np.asarray(segments, dtype=np.int64)
    if seg.shape != sizes.shape:
        raise ValueError(f"segments shape {seg.shape} != sizes shape {sizes.shape}")
    n_groups = quotas.shape[0]
    if seg.size and (seg.min() < 0 or seg.max() >= n_groups):
        raise ValueError(f"segment ids must lie in [0, {n_groups})")

    def seg_sum(v: np.ndarray) -> np.ndarray:
        out = np.zeros(n_groups, dtype=np.int64)
        np.add.at(out, seg, v)
        return out

    totals = seg_sum(sizes)
    target = np.minimum(quotas, totals)
    # Largest integer cap X per group with sum min(X, s_i) <= target: invariant
    # f(lo) <= target < f(hi) where hi = max size + 1 (f(max) = total >= target).
    max_size = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(max_size, seg, sizes)
    lo = np.zeros(n_groups, dtype=np.int64)
    hi = max_size + 1
    while True:
        active = hi - lo > 1
        if not active.any():
            break
        mid = (lo + hi) // 2
        f = seg_sum(np.minimum(mid[seg], sizes))
        ok = f <= target
        lo = np.where(active & ok, mid, lo)
        hi = np.where(active & ~ok, mid, hi)
    cap = lo
    alloc = np.minimum(cap[seg], sizes)
    remainder = target - seg_sum(alloc)
    if remainder.any():
        # Extra units go to children above the cap, largest first, ties by lower index.
        idx = np.arange(sizes.size)
        eligible = sizes > cap[seg]
        order = np.lexsort((idx, -sizes, ~eligible, seg))
        s_seg = seg[order]
        rank = np.arange(order.size) - np.searchsorted(s_seg, s_seg, side="left")
        give = rank < remainder[s_seg]
        # Eligible children sort first in their group and there are more of them than the
        # remainder (f(cap + 1) > target), so only eligible children receive a unit.
        alloc[order[give]] += 1
    return alloc


def water_fill(sizes: np.ndarray, quota: int) -> np.ndarray:
    """Split ``quota`` among children of ``sizes`` (int [n]) by water filling; returns int64 [n]
    with a_i <= s_i and sum == min(quota, sum(sizes)). Pure and exact."""
    sizes = _as_counts(sizes, "sizes")
    quota = int(quota)
    if quota < 0:
        raise ValueError(f"quota must be non-negative, got {quota}")
    return water_fill_segments(sizes, np.zeros(sizes.shape[0], dtype=np.int64), np.array([quota], dtype=np.int64))


def balanced_leaf_quotas(leaf_counts: np.ndarray, ancestors: np.ndarray, total: int) -> np.ndarray:
    """Top-down balanced quotas per leaf.

    leaf_counts: int64 [k1] corpus tokens in each leaf; ancestors: int [k1, L] from
    ``leaf_ancestors`` (column 0 = leaf id, column L-1 = top level); total: token budget.
    A virtual root splits ``total`` among top-level clusters by water filling on their token
    counts, then each node splits its quota among its children, down to the leaves.
    Returns int64 [k1] with sum == min(total, leaf_counts.sum()) and quota <= count per leaf.
    """
    counts = _as_counts(leaf_counts, "leaf_counts")
    anc = np.asarray(ancestors)
    k1 = counts.shape[0]
    if anc.ndim != 2 or anc.shape[0] != k1:
        raise ValueError(f"ancestors must be [k1={k1}, L], got shape {anc.shape}")
    if not np.array_equal(anc[:, 0], np.arange(k1)):
        raise ValueError("ancestors[:, 0] must be the leaf ids 0..k1-1")
    total = int(total)
    if total < 0:
        raise ValueError(f"total must be non-negative, got {total}")
    anc = anc.astype(np.int64)
    n_levels = anc.shape[1]

    # Nodes of each level present in the tree, as dense ids, with their token counts.
    node_ids = []  # node_ids[j]: int64 [k1] dense id of each leaf's level-j ancestor
    for j in range(n_levels):
        _, inv = np.unique(anc[:, j], return_inverse=True)
        node_ids.append(inv.reshape(-1))

    top = node_ids[-1]
    n_top = int(top.max()) + 1 if k1 else 0
    top_counts = np.zeros(n_top, dtype=np.int64)
    np.add.at(top_counts, top, counts)
    quota = water_fill(top_counts, total)  # virtual root -> top level

    for j in range(n_levels - 2, -1, -1):
        child, parent = node_ids[j], node_ids[j + 1]
        n_child = int(child.max()) + 1
        child_counts = np.zeros(n_child, dtype=np.int64)
        np.add.at(child_counts, child, counts)
        child_parent = np.empty(n_child, dtype=np.int64)
        child_parent[child] = parent
        # A level-j node with two different parents would make the tree ill-formed.
        if not np.array_equal(child_parent[child], parent):
            raise ValueError(f"level {j + 1} cluster has more than one parent at level {j + 2}")
        quota = water_fill_segments(child_counts, child_parent, quota)

    # Column 0 is the leaf id itself, so node_ids[0] is the identity.
    return quota[node_ids[0]]
