"""k-means for one level of the token cluster tree (Vo et al. 2024), on top of faiss.

faiss runs the Lloyd iterations (CPU, or GPU where faiss has one); seeding is k-means++ written
here with numpy, so it is seeded by our own RNG and bitwise reproducible. The optional
resampling refinement of Vo et al. repeatedly refits the centroids on the points closest to
them, which moves centroids away from dense regions and towards a more uniform cover of the
support.

Distances: squared L2 by default; with ``spherical=True`` points are L2-normalised, centroids
stay unit-norm, and "distance" means ``1 - cos``.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

__all__ = ["KMeansResult", "kmeans", "assign_nearest", "kmeanspp_init"]

# Rows checked / converted at a time, so validation of a large sample needs no n*d temporaries.
_CHUNK_ROWS = 65536


@dataclass
class KMeansResult:
    """Output of :func:`kmeans`.

    centroids: float32 [k, d]; assignment: int64 [n] nearest centroid of each input point;
    sizes: int64 [k] points per cluster (may contain 0); inertia: sum over points of the squared
    L2 distance (or ``1 - cos`` when spherical) to the assigned centroid.
    """

    centroids: np.ndarray
    assignment: np.ndarray
    sizes: np.ndarray
    inertia: float


def _as_float32_2d(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Validate a 2-D floating array without NaN/inf; return it as C-contiguous float32."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be a floating array, got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
    out = np.ascontiguousarray(x, dtype=np.float32)
    # Chunked so that the check on a large sample does not allocate an n*d bool array; also
    # catches float64 values that overflow to inf in float32.
    for start in range(0, out.shape[0], _CHUNK_ROWS):
        block = out[start : start + _CHUNK_ROWS]
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise ValueError(f"{name} contains NaN or inf (first at row {bad})")
    return out


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    """Return float32 copy of ``x`` with unit-L2 rows (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0).astype(np.float32, copy=False)


def _use_gpu(use_gpu: bool | None) -> bool:
    if use_gpu is None:
        return faiss.get_num_gpus() > 0
    if use_gpu and faiss.get_num_gpus() == 0:
        raise RuntimeError("use_gpu=True but this faiss build sees no GPU (faiss-cpu installed?)")
    return bool(use_gpu)


def _faiss_seed(seed: int) -> int:
    # faiss stores the seed in a C int; hash ours into [0, 2**31) so any Python int works.
    return int(np.random.SeedSequence(seed).generate_state(1)[0] & 0x7FFFFFFF)


def kmeanspp_init(x: np.ndarray, k: int, rng: np.random.Generator, *, sample: int | None = None) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) with numpy.

    x: float32 [n, d] (already normalised in spherical mode; squared L2 on unit vectors is
    2*(1-cos), so D^2 sampling is the same). Seeds are drawn from a seeded subsample of
    ``sample`` rows (default ``min(n, max(8k, 65536))``) because the cost is O(k * sample * d).
    Returns float32 [k, d].
    """
    n = x.shape[0]
    if sample is None:
        sample = max(8 * k, 65536)
    sample = max(k, min(n, int(sample)))
    if sample < n:
        idx = np.sort(rng.choice(n, size=sample, replace=False))
        xs = x[idx]
    else:
        xs = x
    xs64_norm = np.einsum("ij,ij->i", xs, xs, dtype=np.float64)
    chosen = np.empty(k, dtype=np.int64)
    taken = np.zeros(sample, dtype=bool)
    first = int(rng.integers(sample))
    chosen[0] = first
    taken[first] = True
    d2 = np.full(sample, np.inf)
    for j in range(1, k):
        c = xs[chosen[j - 1]]
        # ||x - c||^2 via one matvec; float64 accumulation of the norms keeps it non-negative-ish.
        dist = xs64_norm - 2.0 * (xs @ c).astype(np.float64) + float(np.dot(c.astype(np.float64), c))
        np.minimum(d2, np.maximum(dist, 0.0), out=d2)
        d2[taken] = 0.0
        cum = np.cumsum(d2)
        total = cum[-1]
        if total > 0:
            pick = int(np.searchsorted(cum, rng.random() * total, side="right"))
            pick = min(pick, sample - 1)
            if taken[pick]:  # only possible through float round-off at the upper end
                pick = int(np.flatnonzero(~taken & (d2 > 0))[-1])
        else:
            # Fewer distinct points than k: any untaken point is as good as another.
            free = np.flatnonzero(~taken)
            pick = int(free[rng.integers(free.size)])
        chosen[j] = pick
        taken[pick] = True
    return np.ascontiguousarray(xs[chosen], dtype=np.float32)


def _faiss_train(
    x: np.ndarray, k: int, *, n_iter: int, seed: int, spherical: bool, gpu: bool, init_centroids: np.ndarray | None
) -> np.ndarray:
    """Run faiss Lloyd iterations on all rows of ``x``; return float32 [k, d] centroids."""
    n, d = x.shape
    km = faiss.Kmeans(
        d,
        k,
        niter=int(n_iter),
        nredo=1,
        seed=_faiss_seed(seed),
        spherical=spherical,
        verbose=False,
        # The caller already chose the sample: train on every row (faiss would otherwise
        # subsample to 256 points per centroid) and do not warn about small clusters, which
        # are normal at upper levels where the points are the centroids below.
        max_points_per_centroid=max(1, -(-n // k)),
        min_points_per_centroid=1,
        gpu=gpu,
    )
    km.train(x, init_centroids=init_centroids)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def assign_nearest(
    x: np.ndarray,
    centroids: np.ndarray,
    *,
    spherical: bool = False,
    batch: int = 65536,
    use_gpu: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row of ``x`` by exact faiss search, ``batch`` rows at a time.

    x: float [n, d]; centroids: float [k, d]. Returns (ids int32 [n], dist float32 [n]) where
    dist is the squared L2 distance, or ``1 - cos`` when ``spherical`` (x rows normalised here).
    """
    c = _as_float32_2d(centroids, "centroids")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"x must be [n, {c.shape[1]}], got shape {x.shape}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    d = c.shape[1]
    if spherical:
        c = _normalize_rows(c)
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexFlatL2(d)
    if _use_gpu(use_gpu):
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(c)
    n = x.shape[0]
    ids = np.empty(n, dtype=np.int32)
    dist = np.empty(n, dtype=np.float32)
    for start in range(0, n, batch):
        xb = _as_float32_2d(x[start : start + batch])
        if spherical:
            xb = _normalize_rows(xb)
        db, ib = index.search(xb, 1)
        ids[start : start + batch] = ib[:, 0]
        if spherical:
            dist[start : start + batch] = 1.0 - db[:, 0]
        else:
            # ||x||^2 + ||c||^2 - 2<x,c> can round slightly below zero.
            dist[start : start + batch] = np.maximum(db[:, 0], 0.0)
    return ids, dist


def _closest_per_cluster(assignment: np.ndarray, dist: np.ndarray, r: int) -> np.ndarray:
    """Indices (sorted) of the ``r`` points closest to their centroid in every cluster."""
    order = np.lexsort((dist, assignment))  # by cluster, then distance, then index (stable)
    a_sorted = assignment[order]
    starts = np.searchsorted(a_sorted, a_sorted, side="left")
    rank = np.arange(order.size) - starts
    return np.sort(order[rank < r])


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    n_iter: int = 20,
    seed: int = 0,
    init: str = "kmeans++",
    spherical: bool = False,
    resampling_rounds: int = 0,
    resampling_fraction: float = 0.5,
    use_gpu: bool | None = None,
    init_sample: int | None = None,
) -> KMeansResult:
    """k-means of the rows of ``x`` (float [n, d]) into ``k`` clusters.

    init: "kmeans++" (numpy seeding on a subsample of ``init_sample`` rows, see
    :func:`kmeanspp_init`) or "random" (faiss' default: k random rows). resampling_rounds > 0
    enables Vo et al.'s refinement: take the ``max(1, int(resampling_fraction * n / k))`` points
    closest to each centroid, refit from the current centroids on those, reassign everything.
    Deterministic for a given seed on CPU. Raises ValueError on bad shapes, NaN/inf, k > n.
    """
    x = _as_float32_2d(x)
    n = x.shape[0]
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} clusters requested but only n={n} points given (need k <= n)")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"init must be 'kmeans++' or 'random', got {init!r}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if resampling_rounds < 0:
        raise ValueError(f"resampling_rounds must be >= 0, got {resampling_rounds}")
    if not 0.0 < resampling_fraction <= 1.0 and resampling_rounds > 0:
        raise ValueError(f"resampling_fraction must be in (0, 1], got {resampling_fraction}")
    if spherical:
        x = _normalize_rows(x)
    gpu = _use_gpu(use_gpu)
    rng = np.random.default_rng(np.random.SeedSequence(seed))

    init_c = kmeanspp_init(x, k, rng, sample=init_sample) if init == "kmeans++" else None
    centroids = _faiss_train(x, k, n_iter=n_iter, seed=seed, spherical=spherical, gpu=gpu, init_centroids=init_c)
    assignment, dist = assign_nearest(x, centroids, spherical=spherical, use_gpu=gpu)

    for _ in range(resampling_rounds):
        sizes = np.bincount(assignment, minlength=k)
        r = max(1, int(resampling_fraction * sizes.mean()))
        sel = _closest_per_cluster(assignment, dist, r)
        if sel.size < k:
            # faiss needs >= k training points; empty clusters can leave fewer. Top up with the
            # remaining points in seeded random order (rare, and only matters for tiny inputs).
            rest = np.setdiff1d(np.arange(n), sel, assume_unique=True)
            sel = np.sort(np.concatenate([sel, rng.permutation(rest)[: k - sel.size]]))
        centroids = _faiss_train(
            x[sel], k, n_iter=n_iter, seed=seed, spherical=spherical, gpu=gpu, init_centroids=centroids
        )
        assignment, dist = assign_nearest(x, centroids, spherical=spherical, use_gpu=gpu)

    assignment = assignment.astype(np.int64)
    sizes = np.bincount(assignment, minlength=k).astype(np.int64)
    inertia = float(np.sum(dist, dtype=np.float64))
    return KMeansResult(centroids=centroids, assignment=assignment, sizes=sizes, inertia=inertia)
