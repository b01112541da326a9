"""cluster_filter and excess_smoothed masks (rhocluster.selection.leaf_excess) against a numpy reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rhocluster.selection.leaf_excess import filter_quotas, leaf_excess_means, select_leaf_excess_masks, smoothed_excess


def test_filter_quotas_keep_whole_leaves_best_first():
    counts = np.array([5, 3, 0, 4, 4])
    means = np.array([0.1, 2.0, np.nan, 1.0, 1.0])  # leaves 3 and 4 tie: the lower id first
    np.testing.assert_array_equal(filter_quotas(counts, means, 9), [0, 3, 0, 4, 2])
    np.testing.assert_array_equal(filter_quotas(counts, means, 16), [5, 3, 0, 4, 4])
    np.testing.assert_array_equal(filter_quotas(counts, means, 0), [0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="outside"):
        filter_quotas(counts, means, 17)


def test_smoothed_excess_shrinks_toward_the_leaf_mean():
    leaf = np.array([[-1, 0, 0, 1]])
    e = np.array([[np.nan, 1.0, 3.0, 10.0]], np.float32)
    counts, means = leaf_excess_means([leaf], [e], 2)
    np.testing.assert_array_equal(counts, [2, 1])
    np.testing.assert_allclose(means, [2.0, 10.0])
    np.testing.assert_allclose(smoothed_excess(e, leaf, means, 0.25)[0, 1:], [1.25, 2.75, 10.0])
    np.testing.assert_allclose(smoothed_excess(e, leaf, means, 0.0)[0, 1:], e[0, 1:])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        smoothed_excess(e, leaf, means, 1.5)


@pytest.fixture
def corpus(tmp_path):
    """Three shards with leaf ids, and base/reference losses with many exact ties."""
    from rhocluster.common.atomic import save_npy
    from rhocluster.data.shards import write_shard

    rng = np.random.default_rng(4)
    files = {"prefixes": [], "leaves": [], "base": [], "ref": []}
    for i, w in enumerate([7, 11, 4]):
        prefix = tmp_path / "shards" / f"{i:05d}"
        write_shard(prefix, rng.integers(0, 40, size=(w, 13)), None, 40, 1, 0)
        ids = rng.choice(9, size=(w, 13), p=np.r_[np.full(3, 0.25), np.full(6, 0.25 / 6)]).astype(np.int32)
        ids[:, 0] = -1
        base = np.round(rng.gamma(2.0, 1.0, (w, 13)) + ids * 0.3, 1).astype(np.float16)  # ties after rounding
        ref = np.round(rng.gamma(2.0, 0.5, (w, 13)), 1).astype(np.float16)
        base[:, 0] = ref[:, 0] = np.nan
        for key, arr in (("leaves", ids), ("base", base), ("ref", ref)):
            save_npy(tmp_path / f"{key}{i}.npy", arr)
            files[key].append(str(tmp_path / f"{key}{i}.npy"))
        files["prefixes"].append(str(prefix))
    return tmp_path, files


def _reference(files, kind, budget, weight):
    """Brute force: one global sort over the corpus (score descending, then corpus order)."""
    leaves = np.concatenate([np.load(p).reshape(-1) for p in files["leaves"]])
    base = np.concatenate([np.load(p).astype(np.float32).reshape(-1) for p in files["base"]])
    ref = np.concatenate([np.load(p).astype(np.float32).reshape(-1) for p in files["ref"]])
    e = base - ref
    target = leaves >= 0
    n = int(round(budget * target.sum()))
    k1 = leaves.max() + 1
    means = np.array([e[target & (leaves == c)].astype(np.float64).mean() if (leaves == c).any() else -np.inf for c in range(k1)])
    if kind == "excess_smoothed":
        score = np.where(target, (1 - weight) * e.astype(np.float64) + weight * means[np.maximum(leaves, 0)], -np.inf)
        score = score.astype(np.float32)
        order = np.lexsort((np.arange(len(e)), -score))
        keep = order[:n]
    else:
        leaf_rank = np.argsort(np.argsort(-means, kind="stable"), kind="stable")
        key_leaf = np.where(target, leaf_rank[np.maximum(leaves, 0)], 10**9)
        order = np.lexsort((np.arange(len(e)), -e, key_leaf))
        keep = order[:n]
    mask = np.zeros(len(e), bool)
    mask[keep] = True
    return mask


@pytest.mark.parametrize(("kind", "weight"), [("cluster_filter", None), ("excess_smoothed", 0.5), ("excess_smoothed", 0.0)])
def test_masks_equal_a_global_sort_and_keep_exactly_the_budget(corpus, kind, weight):
    tmp, files = corpus
    outs = [str(tmp / f"{kind}{i}.npy") for i in range(3)]
    summary = select_leaf_excess_masks(
        kind, files["prefixes"], files["leaves"], files["base"], files["ref"], outs, str(tmp / "summary.json"),
        budget=0.6, shrinkage=weight if weight is not None else 0.5,
    )
    got = np.concatenate([np.load(p).reshape(-1) for p in outs]).astype(bool)
    want = _reference(files, kind, 0.6, weight)
    n_targets = sum(np.load(p)[:, 1:].size for p in files["leaves"])
    assert got.sum() == want.sum() == round(0.6 * n_targets) == summary["kept"]
    np.testing.assert_array_equal(got, want)
    on_disk = json.loads((tmp / "summary.json").read_text())
    assert on_disk["kept"] == summary["kept"] and on_disk["policy"] == kind
    if kind == "cluster_filter":
        assert on_disk["leaves_kept_partly"] <= 1, "only the leaf at the cut is kept in part"
        assert on_disk["leaves_kept_whole"] + on_disk["leaves_kept_partly"] + on_disk["leaves_dropped"] == on_disk["leaves"]


def test_zero_shrinkage_is_excess_static(corpus):
    from rhocluster.selection.stage import select_excess_static_masks

    tmp, files = corpus
    a = [str(tmp / f"a{i}.npy") for i in range(3)]
    b = [str(tmp / f"b{i}.npy") for i in range(3)]
    select_leaf_excess_masks("excess_smoothed", files["prefixes"], files["leaves"], files["base"], files["ref"], a,
                             str(tmp / "a.json"), budget=0.6, shrinkage=0.0)
    select_excess_static_masks(files["prefixes"], files["base"], files["ref"], b, str(tmp / "b.json"), budget=0.6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.load(x), np.load(y))


def test_bad_kind_and_leaf_ids_name_the_problem(corpus):
    from rhocluster.common.atomic import save_npy

    tmp, files = corpus
    outs = [str(tmp / f"m{i}.npy") for i in range(3)]
    with pytest.raises(ValueError, match="leaf-excess mask kind 'balanced'"):
        select_leaf_excess_masks("balanced", files["prefixes"], files["leaves"], files["base"], files["ref"], outs,
                                 str(tmp / "s.json"), budget=0.6)
    save_npy(files["leaves"][1], np.zeros((11, 13), np.int32))
    with pytest.raises(ValueError, match=r"leaves1.npy: expected -1 exactly at position 0"):
        select_leaf_excess_masks("cluster_filter", files["prefixes"], files["leaves"], files["base"], files["ref"], outs,
                                 str(tmp / "s.json"), budget=0.6)
    assert not list(tmp.glob("m*.npy"))
