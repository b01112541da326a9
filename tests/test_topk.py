"""Exact per-group top-k across shards (rhocluster.selection.topk) against a sort of everything."""

import numpy as np
import pytest

from rhocluster.selection.topk import group_thresholds, order_keys, top_mask


def test_order_keys_follow_float_order():
    x = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, 7.25, np.inf], dtype=np.float32)
    k = order_keys(x)
    assert (np.diff(k.astype(np.int64)) >= 0).all()
    assert k[3] == k[4]  # -0.0 == +0.0
    assert len(set(k.tolist())) == len(x) - 1
    with pytest.raises(ValueError, match="NaN"):
        order_keys(np.array([1.0, np.nan], dtype=np.float32))


def _select(shards, quotas):
    thresholds = group_thresholds(lambda: ((g, order_keys(s)) for g, s in shards), quotas)
    taken = np.zeros(len(quotas), np.int64)
    return [top_mask(g, order_keys(s), thresholds, taken) for g, s in shards]


def _reference(shards, quotas):
    """Concatenate everything; per group keep the quota highest scores, ties in corpus order."""
    g = np.concatenate([g for g, _ in shards])
    s = np.concatenate([s for _, s in shards]).astype(np.float64)
    pos = np.arange(g.size)
    order = np.lexsort((pos, -s, g))
    sorted_g = g[order]
    rank = np.arange(g.size) - np.searchsorted(sorted_g, sorted_g, side="left")
    keep = np.zeros(g.size, bool)
    keep[order[rank < quotas[sorted_g]]] = True
    return np.split(keep, np.cumsum([len(x) for x, _ in shards])[:-1])


@pytest.mark.parametrize("ties", [False, True])
def test_group_top_k_equals_global_sort(ties):
    rng = np.random.default_rng(0)
    n_groups = 7
    shards = []
    for n in (500, 1, 0, 1200, 333):
        g = rng.integers(0, n_groups, n)
        s = rng.normal(size=n).astype(np.float32)
        if ties:  # few distinct values: many ties at every threshold
            s = np.round(s * 2) / 2
        shards.append((g, s))
    counts = np.bincount(np.concatenate([g for g, _ in shards]), minlength=n_groups)
    quotas = (counts * rng.uniform(0, 1, n_groups)).astype(np.int64)
    quotas[0], quotas[1] = 0, counts[1]  # keep none / keep all
    got = _select(shards, quotas)
    want = _reference(shards, quotas)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    kept = np.bincount(np.concatenate([g[m] for (g, _), m in zip(shards, got)]), minlength=n_groups)
    np.testing.assert_array_equal(kept, quotas)


def test_quota_above_group_size_fails():
    shards = [(np.array([0, 0, 1]), np.array([1.0, 2.0, 3.0], np.float32))]
    with pytest.raises(ValueError, match="group 1: quota 2 but only 1"):
        _select(shards, np.array([1, 2]))
