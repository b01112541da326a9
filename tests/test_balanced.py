import numpy as np
import pytest

from rhocluster.selection.balanced import balanced_leaf_quotas, water_fill, water_fill_segments


def water_fill_brute(sizes: list[int], quota: int) -> list[int]:
    """Hand out one unit at a time to the emptiest non-full child; ties to the larger child,
    then the lower index. Equivalent to raising the water level one step at a time."""
    a = [0] * len(sizes)
    for _ in range(min(quota, sum(sizes))):
        i = min((i for i in range(len(sizes)) if a[i] < sizes[i]), key=lambda i: (a[i], -sizes[i], i))
        a[i] += 1
    return a


def random_tree(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random hierarchy with 1-4 levels; returns (leaf_counts, ancestors)."""
    n_levels = int(rng.integers(1, 5))
    k = [int(rng.integers(1, 13))]
    for _ in range(n_levels - 1):
        k.append(int(rng.integers(1, k[-1] + 1)))
    maps = [rng.integers(0, k[j + 1], size=k[j]) for j in range(n_levels - 1)]
    anc = np.empty((k[0], n_levels), dtype=np.int32)
    anc[:, 0] = np.arange(k[0])
    for j, m in enumerate(maps):
        anc[:, j + 1] = m[anc[:, j]]
    # long-tailed counts with zeros and ties
    counts = np.where(rng.random(k[0]) < 0.2, 0, rng.zipf(1.6, size=k[0]).clip(max=50)).astype(np.int64)
    return counts, anc


def balanced_brute(counts: np.ndarray, anc: np.ndarray, total: int) -> np.ndarray:
    """Explicit recursive tree walk with the brute-force water fill."""
    n_levels = anc.shape[1]

    def node_count(level: int, node: int) -> int:
        return int(counts[anc[:, level] == node].sum())

    out = np.zeros(len(counts), dtype=np.int64)

    def descend(level: int, node: int, quota: int) -> None:
        if level == 0:
            out[node] = quota
            return
        children = sorted(set(anc[anc[:, level] == node, level - 1].tolist()))
        alloc = water_fill_brute([node_count(level - 1, c) for c in children], quota)
        for c, q in zip(children, alloc):
            descend(level - 1, c, q)

    tops = sorted(set(anc[:, -1].tolist()))
    alloc = water_fill_brute([node_count(n_levels - 1, t) for t in tops], total)
    for t, q in zip(tops, alloc):
        descend(n_levels - 1, t, q)
    return out


def test_water_fill_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(600):
        n = int(rng.integers(1, 10))
        sizes = rng.integers(0, 12, size=n)
        if rng.random() < 0.3:  # many ties
            sizes = rng.choice([0, 3, 7], size=n)
        quota = int(rng.integers(0, sizes.sum() + 6))  # includes quota > total
        got = water_fill(sizes, quota)
        assert got.dtype == np.int64
        assert got.tolist() == water_fill_brute(sizes.tolist(), quota), (sizes, quota)
        assert got.sum() == min(quota, sizes.sum())
        assert (got <= sizes).all() and (got >= 0).all()
        # max-min fair: a child below its size is at most one below any other child
        open_ = got < sizes
        if open_.any():
            assert got.max() <= got[open_].min() + 1


def test_water_fill_examples():
    # cap x = 3.5 -> units at 3, the remaining 1 goes to the largest child above the cap
    assert water_fill(np.array([10, 2, 5, 10]), 12).tolist() == [4, 2, 3, 3]
    # tie between equal largest children -> lower index
    assert water_fill(np.array([5, 9, 9]), 10).tolist() == [3, 4, 3]
    assert water_fill(np.array([1, 2, 3]), 100).tolist() == [1, 2, 3]
    assert water_fill(np.array([4, 4]), 0).tolist() == [0, 0]
    assert water_fill(np.array([], dtype=np.int64), 5).tolist() == []
    big = np.array([10**12, 3, 10**11])
    np.testing.assert_array_equal(water_fill(big, 10**11), [(10**11 - 3) // 2 + 1, 3, (10**11 - 3) // 2])


def test_water_fill_errors():
    with pytest.raises(ValueError):
        water_fill(np.array([1, -1]), 1)
    with pytest.raises(ValueError):
        water_fill(np.array([1, 2]), -1)
    with pytest.raises(ValueError):
        water_fill(np.array([1.5, 2.0]), 1)


def test_water_fill_segments_equals_loop():
    rng = np.random.default_rng(1)
    sizes = rng.integers(0, 30, size=200)
    seg = rng.integers(0, 17, size=200)
    quotas = rng.integers(0, 150, size=17)
    got = water_fill_segments(sizes, seg, quotas)
    for g in range(17):
        np.testing.assert_array_equal(got[seg == g], water_fill(sizes[seg == g], quotas[g]))


def test_balanced_matches_brute_force_on_random_trees():
    rng = np.random.default_rng(2)
    for _ in range(300):
        counts, anc = random_tree(rng)
        total = int(rng.integers(0, counts.sum() + 10))
        got = balanced_leaf_quotas(counts, anc, total)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, balanced_brute(counts, anc, total))
        assert got.sum() == min(total, counts.sum())
        assert (got <= counts).all()


def test_balanced_flattens_long_tail():
    # one huge leaf under its own top cluster, many small ones under another
    counts = np.array([1000, 10, 10, 10, 10], dtype=np.int64)
    anc = np.array([[0, 0], [1, 1], [2, 1], [3, 1], [4, 1]], dtype=np.int32)
    q = balanced_leaf_quotas(counts, anc, 100)
    # top level: cap 60 over [1000, 40]; the small cluster keeps all its 40 tokens
    assert q.tolist() == [60, 10, 10, 10, 10]


def test_balanced_rejects_bad_input():
    anc = np.array([[0, 0], [1, 0]], dtype=np.int32)
    with pytest.raises(ValueError):
        balanced_leaf_quotas(np.array([1, 2, 3]), anc, 2)
    with pytest.raises(ValueError):
        balanced_leaf_quotas(np.array([1, 2]), np.array([[1, 0], [0, 0]]), 2)
    with pytest.raises(ValueError):
        balanced_leaf_quotas(np.array([1, 2]), anc, -1)


def test_balanced_matches_brute_force_exhaustively_on_small_trees():
    """Every 2-level tree of 4 leaves under <= 2 parents, leaf counts in 0..2, every budget."""
    import itertools

    for parents in itertools.product(range(2), repeat=4):
        anc = np.stack([np.arange(4), parents], axis=1).astype(np.int32)
        for counts in itertools.product(range(3), repeat=4):
            c = np.array(counts, dtype=np.int64)
            for total in range(int(c.sum()) + 2):
                np.testing.assert_array_equal(balanced_leaf_quotas(c, anc, total), balanced_brute(c, anc, total))


def test_caps_larger_than_small_clusters_and_ties():
    # top clusters of 5 (leaves 2+3), 40 (leaves 20+20) and 5 (one leaf): budget 30 -> cap 20 at the
    # top; the small clusters keep everything, the 20 left go to the big one, split 10/10 (a tie).
    counts = np.array([2, 3, 20, 20, 5], dtype=np.int64)
    anc = np.array([[0, 0], [1, 0], [2, 1], [3, 1], [4, 2]], dtype=np.int32)
    assert balanced_leaf_quotas(counts, anc, 30).tolist() == [2, 3, 10, 10, 5]
    # an odd unit left over at a tie goes to the lower index
    assert balanced_leaf_quotas(counts, anc, 31).tolist() == [2, 3, 11, 10, 5]
    # budget above the total keeps everything
    assert balanced_leaf_quotas(counts, anc, 1000).tolist() == counts.tolist()
