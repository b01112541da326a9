import json

import faiss
import numpy as np
import pytest

from rhocluster.clustering.hierarchy import (
    LevelData,
    check_hierarchy,
    fit_and_save_level,
    fit_hierarchy,
    fit_level,
    leaf_ancestors,
    load_hierarchy,
    load_level,
    save_level,
)

faiss.omp_set_num_threads(1)

KS = [64, 8, 2]


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    rng = np.random.default_rng(0)
    means = rng.normal(0.0, 6.0, (20, 8))
    weights = rng.dirichlet(np.full(20, 0.5))  # long-tailed mixture
    labels = rng.choice(20, size=5000, p=weights)
    return (means[labels] + rng.normal(size=(5000, 8))).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(points):
    return fit_hierarchy(points, KS, seed=0, n_iter=15)


def test_three_level_fit_consistent(points, fitted):
    assert [r.centroids.shape[0] for r in fitted] == KS
    parent_maps = [r.assignment for r in fitted[1:]]
    sizes = [r.sizes for r in fitted]
    anc = check_hierarchy(parent_maps, sizes)
    assert anc.shape == (64, 3) and anc.dtype == np.int32
    np.testing.assert_array_equal(anc[:, 0], np.arange(64))
    # each leaf has exactly one ancestor per level, and it is the one the maps give
    np.testing.assert_array_equal(anc[:, 1], fitted[1].assignment)
    np.testing.assert_array_equal(anc[:, 2], fitted[2].assignment[fitted[1].assignment])
    # sizes count sample tokens at every level
    for r in fitted:
        assert r.sizes.sum() == points.shape[0]
    for j in (1, 2):
        np.testing.assert_array_equal(
            fitted[j].sizes, np.bincount(anc[:, j], weights=fitted[0].sizes, minlength=KS[j]).astype(np.int64)
        )
    # level-2 points are level-1 centroids
    assert fitted[1].assignment.shape == (64,)


def test_save_load_roundtrip(tmp_path, fitted):
    dirs = []
    for level, r in enumerate(fitted, start=1):
        d = tmp_path / f"level_{level}"
        save_level(r, d, {"level": level, "seed": 0})
        dirs.append(d)
    lv = load_level(dirs[0])
    assert isinstance(lv, LevelData)
    assert lv.centroids.dtype == np.float32 and lv.parents.dtype == np.int32 and lv.sizes.dtype == np.int64
    np.testing.assert_array_equal(lv.centroids, fitted[0].centroids)
    assert lv.summary["k"] == 64 and lv.summary["n_points"] == 5000 and lv.summary["meta"]["level"] == 1
    levels, anc = load_hierarchy(dirs)
    assert anc.shape == (64, 3)
    assert [x.k for x in levels] == KS
    # no temp dirs left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["level_1", "level_2", "level_3"]


def test_save_overwrites_existing(tmp_path, fitted):
    d = tmp_path / "lvl"
    save_level(fitted[1], d, {"v": 1})
    (d / "stale.txt").write_text("x")
    save_level(fitted[2], d, {"v": 2})
    assert not (d / "stale.txt").exists()
    assert json.loads((d / "summary.json").read_text())["meta"] == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["lvl"]


def test_load_rejects_corrupt_level(tmp_path, fitted):
    d = tmp_path / "lvl"
    save_level(fitted[0], d, {})
    np.save(d / "sizes.npy", fitted[0].sizes[:-1])
    with pytest.raises(ValueError, match="sizes"):
        load_level(d)


def test_load_hierarchy_rejects_mismatched_levels(tmp_path, fitted):
    save_level(fitted[0], tmp_path / "a", {})
    save_level(fitted[2], tmp_path / "b", {})  # clustered 8 points, level below has 64 clusters
    with pytest.raises(ValueError, match="clustered 8 points"):
        load_hierarchy([tmp_path / "a", tmp_path / "b"])


def test_check_hierarchy_detects_errors(fitted):
    pm = [fitted[1].assignment.copy(), fitted[2].assignment.copy()]
    sizes = [r.sizes.copy() for r in fitted]
    bad_sizes = [s.copy() for s in sizes]
    bad_sizes[1][0] += 1
    with pytest.raises(ValueError, match="children hold"):
        check_hierarchy(pm, bad_sizes)
    bad_pm = [pm[0].copy(), pm[1]]
    bad_pm[0][3] = 8  # parent id out of range
    with pytest.raises(ValueError, match="outside"):
        check_hierarchy(bad_pm, sizes)
    with pytest.raises(ValueError, match="parent map has shape"):
        check_hierarchy([pm[0][:-1], pm[1]], sizes)
    with pytest.raises(ValueError, match="one more"):
        check_hierarchy(pm, sizes[:2])


def test_leaf_ancestors_small():
    anc = leaf_ancestors([np.array([0, 0, 1, 2, 2]), np.array([1, 0, 1])])
    np.testing.assert_array_equal(anc, [[0, 0, 1], [1, 0, 1], [2, 1, 0], [3, 2, 1], [4, 2, 1]])


def test_fit_level_weights_validation(points):
    with pytest.raises(ValueError, match="weights"):
        fit_level(points[:100], 4, weights=np.ones(99, dtype=np.int64))
    res = fit_level(points[:100], 4, weights=np.full(100, 3, dtype=np.int64))
    assert res.sizes.sum() == 300


def test_fit_and_save_level_names_level_and_both_numbers(tmp_path, fitted):
    save_level(fitted[1], tmp_path / "level_2", {})  # 8 clusters
    np.save(tmp_path / "sample.npy", np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"level 1: k=7 clusters requested but only n=5 points \(sampled tokens\)"):
        fit_and_save_level(tmp_path / "sample.npy", tmp_path / "level_1", 1, {"k": 7})
    with pytest.raises(ValueError, match=r"level 3: k=9 .* only n=8 points \(clusters at level 2\)"):
        fit_and_save_level(
            tmp_path / "level_2/centroids.npy", tmp_path / "level_3", 3, {"k": 9},
            child_sizes_path=tmp_path / "level_2/sizes.npy",
        )
    assert not (tmp_path / "level_1").exists() and not (tmp_path / "level_3").exists()


def test_fit_and_save_level_runs_the_configured_resampling(tmp_path, points):
    """The level's keys reach k-means: the saved level is the resampling-clustering fit, which
    differs from the plain fit, and its summary records the settings."""
    from rhocluster.clustering.kmeans import kmeans

    np.save(tmp_path / "sample.npy", points)
    params = {"k": 16, "n_iter": 12, "init_sample": "all", "resampling_rounds": 2, "resampling_fraction": 0.3}
    res = fit_and_save_level(tmp_path / "sample.npy", tmp_path / "level_1", 1, params, seed=5)
    same = dict(seed=5, n_iter=12, init_sample="all")
    direct = kmeans(points, 16, resampling_rounds=2, resampling_fraction=0.3, **same)
    assert res.centroids.tobytes() == direct.centroids.tobytes()
    assert res.centroids.tobytes() != kmeans(points, 16, **same).centroids.tobytes()
    level = load_level(tmp_path / "level_1")
    np.testing.assert_array_equal(level.centroids, res.centroids)
    np.testing.assert_array_equal(level.parents, res.assignment)
    assert level.summary["meta"]["resampling_rounds"] == 2 and level.summary["meta"]["init_sample"] == "all"


@pytest.mark.parametrize("weighted", [False, True])
def test_levels_from_files_chain_and_stay_consistent(tmp_path, points, weighted):
    np.save(tmp_path / "sample.npy", points)
    src, sizes = tmp_path / "sample.npy", None
    dirs = []
    for level, k in enumerate(KS, start=1):
        d = tmp_path / f"level_{level}"
        params = {"k": k, "n_iter": 10, "weighted": weighted, "resampling_rounds": 1 if level == 1 else 0}
        fit_and_save_level(src, d, level, params, child_sizes_path=sizes, seed=level)
        src, sizes = d / "centroids.npy", d / "sizes.npy"
        dirs.append(d)
    levels, anc = load_hierarchy(dirs)
    # every leaf has one ancestor per level and sizes add up level to level
    assert anc.shape == (KS[0], len(KS)) and [lv.k for lv in levels] == KS
    assert all(int(lv.sizes.sum()) == len(points) for lv in levels)
    assert levels[1].summary["meta"]["weighted"] is weighted


def test_weighted_upper_level_follows_the_sizes(fitted):
    # weighting by child sizes moves upper centroids towards the populous children
    sizes = fitted[0].sizes
    plain = fit_level(fitted[0].centroids, 8, weights=sizes, seed=0)
    heavy = fit_level(fitted[0].centroids, 8, weights=sizes, weighted=True, seed=0)
    assert plain.sizes.sum() == heavy.sizes.sum() == sizes.sum()
    assert not np.array_equal(plain.centroids, heavy.centroids)
    with pytest.raises(ValueError, match="weighted=True needs"):
        fit_level(fitted[0].centroids, 8, weighted=True)
