import warnings

import faiss
import numpy as np
import pytest
from sklearn.cluster import KMeans

from rhocluster.clustering.kmeans import KMeansResult, assign_nearest, kmeans, kmeanspp_init

# Cores are shared with other jobs; one thread also keeps the BLAS path identical between runs.
faiss.omp_set_num_threads(1)


def gaussian_mixture(n: int, d: int, n_comp: int, seed: int, spread: float = 5.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, spread, (n_comp, d))
    labels = rng.integers(n_comp, size=n)
    return (means[labels] + rng.normal(0.0, 1.0, (n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def mixture() -> np.ndarray:
    return gaussian_mixture(4000, 16, 12, seed=1)


def check_result(res: KMeansResult, x: np.ndarray, k: int, spherical: bool = False) -> None:
    n, d = x.shape
    assert res.centroids.dtype == np.float32 and res.centroids.shape == (k, d)
    assert res.assignment.dtype == np.int64 and res.assignment.shape == (n,)
    assert res.sizes.dtype == np.int64 and res.sizes.shape == (k,)
    assert res.sizes.sum() == n
    np.testing.assert_array_equal(res.sizes, np.bincount(res.assignment, minlength=k))
    # assignment is the nearest centroid, and inertia the sum of those distances
    ids, dist = assign_nearest(x, res.centroids, spherical=spherical)
    np.testing.assert_array_equal(ids, res.assignment)
    # float32 distances: allow ~1e-7 round-off per point (x is renormalised in spherical mode)
    assert res.inertia == pytest.approx(float(dist.astype(np.float64).sum()), rel=1e-6, abs=1e-7 * n)


def test_deterministic_bytes(mixture):
    a = kmeans(mixture, 40, seed=7, resampling_rounds=1)
    b = kmeans(mixture, 40, seed=7, resampling_rounds=1)
    assert a.centroids.tobytes() == b.centroids.tobytes()
    np.testing.assert_array_equal(a.assignment, b.assignment)
    c = kmeans(mixture, 40, seed=8)
    assert a.centroids.tobytes() != c.centroids.tobytes()


def test_k_greater_than_n_names_both():
    x = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(ValueError) as err:
        kmeans(x, 17)
    assert "17" in str(err.value) and "5" in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(mixture, bad):
    x = mixture[:100].copy()
    x[13, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        kmeans(x, 4)


@pytest.mark.parametrize(
    "x", [np.zeros(10, dtype=np.float32), np.zeros((10, 3), dtype=np.int64), np.zeros((2, 3, 4), dtype=np.float32)]
)
def test_bad_shape_or_dtype(x):
    with pytest.raises(ValueError):
        kmeans(x, 2)


def test_bad_init_name(mixture):
    with pytest.raises(ValueError, match="init"):
        kmeans(mixture, 4, init="greedy")


def test_inertia_close_to_sklearn(mixture):
    # More clusters than components, so neither side hinges on one lucky seeding.
    k = 40
    ours = kmeans(mixture, k, seed=0, n_iter=25)
    check_result(ours, mixture, k)
    ref = KMeans(k, n_init=1, init="k-means++", random_state=0).fit(mixture.astype(np.float64))
    assert abs(ours.inertia / ref.inertia_ - 1.0) < 0.02


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_valid_result_both_inits(mixture, init):
    res = kmeans(mixture, 24, init=init, seed=3)
    check_result(res, mixture, 24)


def long_tailed_mixture(seed: int, n: int = 40000, components: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """2-D mixture of unit Gaussians at random means in [-20, 20]^2 with Zipf weights 1/rank:
    the first component holds ~28% of the points. Returns (points float32 [n, 2], means [components, 2])."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, components + 1)
    means = rng.uniform(-20.0, 20.0, (components, 2))
    labels = rng.choice(components, size=n, p=w / w.sum())
    return (means[labels] + rng.normal(0.0, 1.0, (n, 2))).astype(np.float32), means


def centroids_in_densest(centroids: np.ndarray, means: np.ndarray) -> int:
    """Centroids whose nearest component mean is the densest component's (component 0)."""
    return int((((centroids[:, None, :] - means[None]) ** 2).sum(-1).argmin(1) == 0).sum())


@pytest.mark.parametrize("seed", [0, 2])
def test_resampling_moves_centroids_out_of_the_densest_component(seed):
    """Vo et al.'s point: plain k-means over-covers the dense head of a long-tailed distribution;
    resampling rounds (fresh k-means++ fits on the points closest to each centroid) move centroids
    to the tail. A refit warm-started from the current centroids cannot change how many centroids a
    region has: the former implementation kept all 6 here (docs/clustering.md)."""
    x, means = long_tailed_mixture(seed)
    plain = kmeans(x, 40, seed=seed, n_iter=20)
    res = kmeans(x, 40, seed=seed, n_iter=20, resampling_rounds=5, resampling_fraction=0.5)
    check_result(res, x, 40)
    n_plain, n_res = centroids_in_densest(plain.centroids, means), centroids_in_densest(res.centroids, means)
    assert n_plain >= 5  # the head attracts several centroids without resampling
    assert n_res <= n_plain - 2
    # the centroids spread towards the tail: cluster sizes are far more even than the plain fit's
    assert res.sizes.max() > plain.sizes.max()  # the head's fewer centroids hold more points each
    assert np.median(res.sizes) < np.median(plain.sizes)


def test_resampling_size_matches_vo_et_al_configs():
    # configs/4levels_web_based_images.yaml: sample_size 10, 5, 3 for mean cluster sizes 20, 10, 5
    from rhocluster.clustering.kmeans import resampling_size

    assert [resampling_size(20 * k, k, 0.5) for k in (1000, 7)] == [10, 10]
    assert resampling_size(500_000, 50_000, 0.5) == 5
    assert resampling_size(50_000, 10_000, 0.5) == 3
    assert resampling_size(10, 10, 0.01) == 1


def test_each_round_is_a_fresh_seeded_fit(mixture, monkeypatch):
    """Every fit (the first and one per round) seeds anew, from its own stream, with k-means++
    on the points it clusters: every point first, then a union of r points per cluster."""
    import rhocluster.clustering.kmeans as km

    calls = []
    real = km.kmeanspp_init

    def recording(points, k, rng, **kw):
        calls.append((points.shape[0], rng.bit_generator.seed_seq.spawn_key))
        return real(points, k, rng, **kw)

    monkeypatch.setattr(km, "kmeanspp_init", recording)
    res = km.kmeans(mixture, 20, seed=4, resampling_rounds=3, resampling_fraction=0.3)
    check_result(res, mixture, 20)
    r = km.resampling_size(mixture.shape[0], 20, 0.3)
    assert [c[1] for c in calls] == [(), (1,), (2,), (3,)]
    assert calls[0][0] == mixture.shape[0]
    assert all(c[0] <= 20 * r for c in calls[1:])


def test_closest_per_cluster_breaks_ties_by_index():
    from rhocluster.clustering.kmeans import _closest_per_cluster

    assignment = np.array([0, 0, 0, 1, 1, 2, 0])
    dist = np.array([1.0, 0.0, 1.0, 2.0, 2.0, 5.0, 1.0], np.float32)
    np.testing.assert_array_equal(_closest_per_cluster(assignment, dist, 2), [0, 1, 3, 4, 5])
    np.testing.assert_array_equal(_closest_per_cluster(assignment, dist, 1), [1, 3, 5])


def test_gpu_index_is_used_when_faiss_has_gpus(mixture, monkeypatch):
    """The GPU path on a CPU machine: with faiss reporting a GPU, search moves the index to the GPUs
    and k-means asks faiss for its GPU trainer."""
    import rhocluster.clustering.kmeans as km

    moved, trainers = [], []
    monkeypatch.setattr(km.faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(km.faiss, "index_cpu_to_all_gpus", lambda index: moved.append(index) or index)
    real_kmeans = km.faiss.Kmeans

    def recording_kmeans(d, k, **kw):
        trainers.append(kw["gpu"])
        kw["gpu"] = False  # train on the CPU for real
        return real_kmeans(d, k, **kw)

    monkeypatch.setattr(km.faiss, "Kmeans", recording_kmeans)
    res = kmeans(mixture[:500], 8, seed=0)
    assert trainers == [True] and len(moved) == 1
    check_result(res, mixture[:500], 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # faiss has the GPUs: nothing to warn about
        assert km._use_gpu(None) is True


def test_cuda_without_faiss_gpus_warns(monkeypatch):
    import rhocluster.clustering.kmeans as km

    monkeypatch.setattr(km.faiss, "get_num_gpus", lambda: 0)
    monkeypatch.setattr(km, "_cuda_visible", lambda: True)
    with pytest.warns(RuntimeWarning, match="faiss-gpu-cu12"):
        assert km._use_gpu(None) is False
    with pytest.raises(RuntimeError, match="sees no GPU"):
        km._use_gpu(True)


def test_resampling_with_tiny_clusters():
    # Heavy duplication: few distinct points, r = 1 per cluster; must still return k centroids.
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(6, 4)).astype(np.float32), 20, axis=0)
    res = kmeans(x, 10, seed=0, resampling_rounds=2, resampling_fraction=0.01)
    assert res.centroids.shape == (10, 4)
    assert res.sizes.sum() == x.shape[0]
    assert np.isfinite(res.centroids).all()


def test_spherical_unit_norm(mixture):
    res = kmeans(mixture, 16, spherical=True, seed=1)
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, atol=1e-5)
    check_result(res, mixture, 16, spherical=True)
    # 1 - cos lies in [0, 2]
    assert 0.0 <= res.inertia <= 2.0 * mixture.shape[0]


def test_k_equals_n_and_k_one(mixture):
    x = mixture[:50]
    full = kmeans(x, 50, n_iter=5)
    assert full.sizes.sum() == 50 and full.inertia == pytest.approx(0.0, abs=1e-3)
    one = kmeans(x, 1)
    np.testing.assert_allclose(one.centroids[0], x.mean(axis=0), rtol=1e-4, atol=1e-4)


def test_float16_and_float64_inputs(mixture):
    a = kmeans(mixture.astype(np.float16), 8, seed=0)
    b = kmeans(mixture.astype(np.float64), 8, seed=0)
    assert a.centroids.dtype == b.centroids.dtype == np.float32


def test_assign_nearest_batched_matches_bruteforce(mixture):
    c = mixture[:20]
    ids, dist = assign_nearest(mixture, c, batch=333)
    assert ids.dtype == np.int32 and dist.dtype == np.float32
    d2 = ((mixture[:, None, :].astype(np.float64) - c[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(ids, d2.argmin(1))
    np.testing.assert_allclose(dist, d2.min(1), rtol=1e-4, atol=1e-3)
    ids_s, dist_s = assign_nearest(mixture, c, spherical=True, batch=1000)
    xn = mixture / np.linalg.norm(mixture, axis=1, keepdims=True)
    cn = c / np.linalg.norm(c, axis=1, keepdims=True)
    cos = xn @ cn.T
    np.testing.assert_array_equal(ids_s, cos.argmax(1))
    np.testing.assert_allclose(dist_s, 1.0 - cos.max(1), atol=1e-5)


def test_kmeanspp_subsample_and_duplicates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)).astype(np.float32)
    c = kmeanspp_init(x, 10, np.random.default_rng(1), sample=50)
    assert c.shape == (10, 3)
    # every seed is a data point, all distinct
    assert len({tuple(r) for r in c}) == 10
    assert all((np.abs(x - r).sum(1) == 0).any() for r in c)
    dup = np.zeros((30, 2), dtype=np.float32)  # all points identical: must not loop or crash
    assert kmeanspp_init(dup, 5, np.random.default_rng(0)).shape == (5, 2)
    assert kmeanspp_init(dup, 5, np.random.default_rng(0), device="cpu").shape == (5, 2)


def test_kmeanspp_torch_steps_pick_the_numpy_seeds():
    """The torch path (cuda in the workflow, cpu here) draws the same random numbers and so picks
    the same seeds as the numpy path, weighted or not, on every point or on a subsample."""
    x = gaussian_mixture(3000, 8, 25, seed=5)
    w = np.random.default_rng(0).integers(1, 5, size=3000).astype(np.float64)
    for kw in ({}, {"weights": w}, {"sample": 1000}, {"sample": "all"}):
        a = kmeanspp_init(x, 30, np.random.default_rng(1), **kw)
        b = kmeanspp_init(x, 30, np.random.default_rng(1), device="cpu", **kw)
        np.testing.assert_array_equal(a, b)


def test_init_sample_rows():
    from rhocluster.clustering.kmeans import default_init_sample, resolve_init_sample

    assert resolve_init_sample(None, 16384, 8_000_000) == default_init_sample(16384) == 262144
    assert resolve_init_sample("all", 16384, 8_000_000) == 8_000_000
    assert resolve_init_sample(1000, 64, 500) == 500 and resolve_init_sample(10, 64, 500) == 64
    for bad in ("some", 0):
        with pytest.raises(ValueError, match="init_sample"):
            resolve_init_sample(bad, 4, 10)
    with pytest.raises(ValueError, match="init_sample"):
        kmeans(gaussian_mixture(50, 2, 2, seed=0), 4, init_sample="half")


def test_weighted_single_cluster_is_the_weighted_mean(mixture):
    x = mixture[:40]
    w = np.arange(1, 41, dtype=np.float64)
    res = kmeans(x, 1, weights=w)
    np.testing.assert_allclose(res.centroids[0], (x * w[:, None]).sum(0) / w.sum(), rtol=1e-4, atol=1e-4)
    d2 = ((x - res.centroids[0]) ** 2).sum(1)
    assert res.inertia == pytest.approx(float((d2 * w).sum()), rel=1e-4)  # the weighted objective


def test_weights_pull_centroids_towards_heavy_points():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(10, 1, (200, 2))]).astype(np.float32)
    w = np.where(np.arange(400) < 200, 1.0, 50.0)  # the cluster at 10 weighs 50x more
    plain = kmeans(x, 6, seed=0)
    heavy = kmeans(x, 6, seed=0, weights=w)
    assert (heavy.centroids[:, 0] > 5).sum() > (plain.centroids[:, 0] > 5).sum()
    np.testing.assert_array_equal(heavy.sizes, np.bincount(heavy.assignment, minlength=6))  # sizes count points
    with pytest.raises(ValueError, match="weights"):
        kmeans(x, 2, weights=-w)
    with pytest.raises(ValueError, match="weights"):
        kmeans(x, 2, weights=w[:10])


def test_subsampled_training_is_deterministic_and_close(mixture):
    full = kmeans(mixture, 40, seed=0, n_iter=20)
    sub = kmeans(mixture, 40, seed=0, n_iter=20, max_points_per_centroid=32)  # 1280 of 4000 points
    again = kmeans(mixture, 40, seed=0, n_iter=20, max_points_per_centroid=32)
    assert sub.centroids.tobytes() == again.centroids.tobytes()
    check_result(sub, mixture, 40)  # assignment and inertia still over every point
    assert sub.inertia < 1.05 * full.inertia
    with pytest.raises(ValueError, match="max_points_per_centroid"):
        kmeans(mixture, 4, max_points_per_centroid=0)


def test_seeding_runs_on_the_torch_gpu_when_one_is_visible(mixture, monkeypatch):
    """k-means++ steps go to torch's GPU whenever torch sees one (even with a CPU build of faiss),
    and stay in numpy with use_gpu=False."""
    import rhocluster.clustering.kmeans as km

    devices = []
    real = km.kmeanspp_init

    def recording(points, k, rng, device=None, **kw):
        devices.append(device)
        return real(points, k, rng, **kw)  # numpy on this machine

    monkeypatch.setattr(km, "kmeanspp_init", recording)
    monkeypatch.setattr(km, "_cuda_visible", lambda: True)
    monkeypatch.setattr(km.faiss, "get_num_gpus", lambda: 0)
    with pytest.warns(RuntimeWarning, match="faiss-gpu-cu12"):
        km.kmeans(mixture[:500], 8, seed=0, resampling_rounds=1)
    km.kmeans(mixture[:500], 8, seed=0, use_gpu=False)
    assert devices == ["cuda", "cuda", None]
