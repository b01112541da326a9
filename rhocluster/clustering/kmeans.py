"""k-means for one level of the token cluster tree (Vo et al. 2024), on top of faiss.

faiss runs the Lloyd iterations and the nearest-centroid searches (CPU, or GPU where faiss has
one). Written here, because faiss does not have them: greedy k-means++ seeding (faiss only seeds
with random points; ours is seeded by our own RNG, bitwise reproducible in numpy, and runs its
distance steps on a torch GPU where there is one) and Vo et al.'s resampling-clustering: rounds
of a fresh k-means++ fit on the points closest to each centroid, after which every point is
reassigned. Dense regions give up centroids to the tail, so the centroids cover the support more
uniformly (docs/clustering.md).

Distances: squared L2 by default; with ``spherical=True`` points are L2-normalised, centroids
stay unit-norm, and "distance" means ``1 - cos``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import faiss
import numpy as np

from rhocluster.clustering.sizing import default_init_sample, kmeanspp_trials, resampling_size, resolve_init_sample

__all__ = [
    "KMeansResult",
    "kmeans",
    "assign_nearest",
    "NearestCentroid",
    "kmeanspp_init",
    "default_init_sample",
    "resolve_init_sample",
    "resampling_size",
]

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


def _cuda_visible() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _use_gpu(use_gpu: bool | None) -> bool:
    if use_gpu is None:
        if faiss.get_num_gpus() > 0:
            return True
        if _cuda_visible():
            warnings.warn(
                "CUDA GPUs are visible but this faiss build has none (faiss-cpu installed): k-means and "
                "nearest-centroid search run on the CPU; install faiss-gpu-cu12 for the GPU index (README)",
                RuntimeWarning,
                stacklevel=3,
            )
        return False
    if use_gpu and faiss.get_num_gpus() == 0:
        raise RuntimeError("use_gpu=True but this faiss build sees no GPU (faiss-cpu installed?)")
    return bool(use_gpu)


def _faiss_seed(seed: int) -> int:
    # faiss stores the seed in a C int; hash ours into [0, 2**31) so any Python int works.
    return int(np.random.SeedSequence(seed).generate_state(1)[0] & 0x7FFFFFFF)


def kmeanspp_init(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    sample: int | str | None = None,
    weights: np.ndarray | None = None,
    n_local_trials: int | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; the variant scikit-learn and Vo et
    al.'s ``distributed_kmeans_plusplus_init`` use).

    Each step draws ``n_local_trials`` candidates (default ``2 + ln k``; 1 = plain k-means++) with
    probability proportional to weight * D^2 and keeps the one that lowers the potential most.
    The greedy choice matters on long-tailed data (several % of final inertia against plain
    k-means++) and costs little more: a step reads the sample once either way.
    x: float32 [n, d] (already normalised in spherical mode; squared L2 on unit vectors is
    2*(1-cos), so D^2 sampling is the same). Seeds are drawn from a seeded subsample of
    ``sample`` rows (see :func:`resolve_init_sample`) because the cost is O(k * sample * d).
    weights: optional float [n] >= 0 (the first seed is drawn proportional to weight).
    device: None = numpy (bitwise reproducible); a torch device ("cuda") runs the distance steps
    there, with the same random draws, which makes seeding on millions of rows take seconds.
    Returns float32 [k, d].
    """
    n = x.shape[0]
    sample = resolve_init_sample(sample, k, n)
    trials = max(1, kmeanspp_trials(k) if n_local_trials is None else int(n_local_trials))
    if sample < n:
        idx = np.sort(rng.choice(n, size=sample, replace=False))
        xs = np.ascontiguousarray(x[idx])
        ws = None if weights is None else np.asarray(weights, dtype=np.float64)[idx]
    else:
        xs = x
        ws = None if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.ones(sample) if ws is None else ws
    if w.sum() <= 0:
        first = int(rng.integers(sample))
    else:
        first = min(int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right")), sample - 1)
    steps = _kmeanspp_steps_numpy if device is None else _kmeanspp_steps_torch
    chosen = steps(xs, w, k, first, trials, rng, device)
    return np.ascontiguousarray(xs[chosen], dtype=np.float32)


def _greedy_seeds(
    k: int, sample: int, first: int, closest, rng: np.random.Generator, step: Callable
) -> np.ndarray:
    """Row indices [k] of the greedy k-means++ seeds among ``sample`` rows, starting from ``first``.

    ``closest``: every row's squared distance to ``first`` (numpy array or torch tensor).
    ``step(closest)`` draws the candidates and returns ``(pick, closest)`` with the distances to the
    nearest seed updated, or ``(None, closest)`` when no row has weight and distance left; the
    bookkeeping here is shared by the numpy and torch steps.
    """
    chosen = np.empty(k, dtype=np.int64)
    taken = np.zeros(sample, dtype=bool)
    chosen[0] = first
    taken[first] = True
    closest[first] = 0.0
    for j in range(1, k):
        pick, closest = step(closest)
        if pick is None:
            # Fewer distinct points than k: any untaken point is as good as another.
            free = np.flatnonzero(~taken)
            pick = int(free[rng.integers(free.size)])
        chosen[j] = pick
        taken[pick] = True
        closest[pick] = 0.0
    return chosen


def _kmeanspp_steps_numpy(
    xs: np.ndarray, w: np.ndarray, k: int, first: int, trials: int, rng: np.random.Generator, device: None
) -> np.ndarray:
    """Row indices [k] of the greedy k-means++ seeds in ``xs`` [s, d], starting from ``first``."""
    sample = xs.shape[0]
    w32 = w.astype(np.float32)
    xs_norm = np.einsum("ij,ij->i", xs, xs, dtype=np.float64).astype(np.float32)
    # A step is memory-bound (it reads the whole sample once): a contiguous [d, sample] copy makes
    # the GEMM stream rows, and folding -2 into the few candidate rows saves a pass over the result.
    xs_t = np.ascontiguousarray(xs.T)

    def sqdist(rows: np.ndarray) -> np.ndarray:
        """float32 [len(rows), sample] squared distances (up to round-off) from xs[rows] to the sample."""
        out = (xs[rows] * np.float32(-2.0)) @ xs_t
        out += xs_norm[None, :]
        out += xs_norm[rows][:, None]
        return out

    def step(closest: np.ndarray) -> tuple[int | None, np.ndarray]:
        prob = closest * w
        cum = np.cumsum(prob, dtype=np.float64)
        total = cum[-1]
        if not total > 0:
            return None, closest
        cand = np.minimum(np.searchsorted(cum, rng.random(trials) * total, side="right"), sample - 1)
        if (prob[cand] <= 0).any():  # only possible through float round-off at the upper end
            cand[prob[cand] <= 0] = np.flatnonzero(prob > 0)[-1]
        dist = sqdist(cand)
        np.minimum(dist, closest[None, :], out=dist)
        best = int(np.argmin(dist @ w32))
        return int(cand[best]), np.maximum(dist[best], 0.0)  # round-off can dip below zero

    return _greedy_seeds(k, sample, first, np.maximum(sqdist(np.array([first]))[0], 0.0), rng, step)


def _kmeanspp_steps_torch(
    xs: np.ndarray, w: np.ndarray, k: int, first: int, trials: int, rng: np.random.Generator, device: str
) -> np.ndarray:
    """:func:`_kmeanspp_steps_numpy` with the distances, sums and searches on a torch device (the
    random draws stay on ``rng``, so both paths pick the same seeds up to float round-off)."""
    import torch

    dev = torch.device(device)
    sample = xs.shape[0]
    with torch.no_grad():
        X = torch.from_numpy(np.ascontiguousarray(xs)).to(dev)
        w64 = torch.from_numpy(np.asarray(w, dtype=np.float64)).to(dev)
        w32 = w64.float()
        x_norm = (X.double() * X.double()).sum(1).float()

        def sqdist(rows: torch.Tensor) -> torch.Tensor:
            out = (X[rows] * -2.0) @ X.T
            out += x_norm[None, :]
            out += x_norm[rows][:, None]
            return out

        def step(closest: torch.Tensor) -> tuple[int | None, torch.Tensor]:
            prob = closest.double() * w64
            cum = torch.cumsum(prob, 0)
            total = float(cum[-1])
            if not total > 0:
                return None, closest
            u = torch.from_numpy(rng.random(trials) * total).to(dev)
            cand = torch.searchsorted(cum, u, right=True).clamp_max_(sample - 1)
            bad = prob[cand] <= 0
            if bool(bad.any()):  # float round-off at the upper end
                cand[bad] = torch.nonzero(prob > 0)[-1, 0]
            dist = sqdist(cand)
            torch.minimum(dist, closest[None, :], out=dist)
            best = int(torch.argmin(dist @ w32))
            return int(cand[best]), dist[best].clamp_min_(0.0)

        closest = sqdist(torch.tensor([first], device=dev))[0].clamp_min_(0.0)
        return _greedy_seeds(k, sample, first, closest, rng, step)


def _faiss_kmeans(
    x: np.ndarray, k: int, n_iter: int, points_per_centroid: int, *, seed: int, spherical: bool, gpu: bool,
    init_centroids: np.ndarray | None, weights: np.ndarray | None,
) -> np.ndarray:
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=int(n_iter),
        nredo=1,
        seed=_faiss_seed(seed),
        spherical=spherical,
        verbose=False,
        max_points_per_centroid=int(points_per_centroid),
        # No warning about small clusters: normal at upper levels, whose points are the centroids below.
        min_points_per_centroid=1,
        gpu=gpu,
    )
    w = None if weights is None else np.ascontiguousarray(weights, dtype=np.float32)
    km.train(x, weights=w, init_centroids=init_centroids)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def _faiss_train(
    x: np.ndarray,
    k: int,
    *,
    n_iter: int,
    seed: int,
    spherical: bool,
    gpu: bool,
    init_centroids: np.ndarray | None,
    weights: np.ndarray | None = None,
    max_points_per_centroid: int | None = None,
) -> np.ndarray:
    """``n_iter`` faiss Lloyd iterations on ``x``; return float32 [k, d] centroids.

    With ``max_points_per_centroid`` and more rows than ``k`` times that, all iterations but the
    last run on faiss' seeded subsample of that many points per centroid and the last on every
    row, so the centroids returned are the means of their full clusters (the one full pass costs
    little and recovers most of what subsampling loses).
    """
    n = x.shape[0]
    every = max(1, -(-n // k))  # faiss trains on every row when n <= k * max_points_per_centroid
    kw = dict(seed=seed, spherical=spherical, gpu=gpu, weights=weights)
    if max_points_per_centroid is not None and n > k * max_points_per_centroid and n_iter > 1:
        init_centroids = _faiss_kmeans(x, k, n_iter - 1, max_points_per_centroid, init_centroids=init_centroids, **kw)
        n_iter = 1
    return _faiss_kmeans(x, k, n_iter, every, init_centroids=init_centroids, **kw)


class NearestCentroid:
    """An exact faiss index over ``centroids`` (float [k, d]; on every GPU faiss sees unless
    ``use_gpu`` is False), built once and searched many times (e.g. batch after batch of a shard)."""

    def __init__(self, centroids: np.ndarray, *, spherical: bool = False, use_gpu: bool | None = None):
        c = _as_float32_2d(centroids, "centroids")
        self.dim, self.spherical = c.shape[1], spherical
        if spherical:
            c = _normalize_rows(c)
            index = faiss.IndexFlatIP(self.dim)
        else:
            index = faiss.IndexFlatL2(self.dim)
        if _use_gpu(use_gpu):
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(c)
        self.index = index

    def search(self, x: np.ndarray, batch: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """(ids int32 [n], dist float32 [n]) of every row of ``x`` [n, d], ``batch`` rows at a time; dist
        is the squared L2 distance, or ``1 - cos`` when spherical (x rows normalised here)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be [n, {self.dim}], got shape {x.shape}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        n = x.shape[0]
        ids = np.empty(n, dtype=np.int32)
        dist = np.empty(n, dtype=np.float32)
        for start in range(0, n, batch):
            xb = _as_float32_2d(x[start : start + batch])
            if self.spherical:
                xb = _normalize_rows(xb)
            db, ib = self.index.search(xb, 1)
            ids[start : start + batch] = ib[:, 0]
            if self.spherical:
                dist[start : start + batch] = 1.0 - db[:, 0]
            else:
                # ||x||^2 + ||c||^2 - 2<x,c> can round slightly below zero.
                dist[start : start + batch] = np.maximum(db[:, 0], 0.0)
        return ids, dist


def assign_nearest(
    x: np.ndarray,
    centroids: np.ndarray,
    *,
    spherical: bool = False,
    batch: int = 65536,
    use_gpu: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row of ``x`` by exact faiss search (:class:`NearestCentroid`).

    x: float [n, d]; centroids: float [k, d]. Returns (ids int32 [n], dist float32 [n]) where
    dist is the squared L2 distance, or ``1 - cos`` when ``spherical`` (x rows normalised here).
    """
    return NearestCentroid(centroids, spherical=spherical, use_gpu=use_gpu).search(x, batch=batch)


def _closest_per_cluster(assignment: np.ndarray, dist: np.ndarray, r: int) -> np.ndarray:
    """Indices (sorted) of the ``r`` points closest to their centroid in every cluster."""
    order = np.lexsort((dist, assignment))  # by cluster, then distance, then index (stable)
    a_sorted = assignment[order]
    starts = np.searchsorted(a_sorted, a_sorted, side="left")
    rank = np.arange(order.size) - starts
    return np.sort(order[rank < r])


def _seeding_device(use_gpu: bool | None) -> str | None:
    """torch device of the k-means++ steps: "cuda" where torch sees a GPU (also when faiss is a CPU
    build: seeding on millions of rows is hours in numpy, seconds on a GPU) unless ``use_gpu`` is
    False; None = numpy."""
    return "cuda" if use_gpu is not False and _cuda_visible() else None


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
    init_sample: int | str | None = None,
    weights: np.ndarray | None = None,
    max_points_per_centroid: int | None = None,
) -> KMeansResult:
    """k-means of the rows of ``x`` (float [n, d]) into ``k`` clusters, with Vo et al.'s
    resampling-clustering when ``resampling_rounds`` > 0.

    One fit: seeding (init "kmeans++": greedy k-means++ on ``init_sample`` rows, see
    :func:`kmeanspp_init` and :func:`resolve_init_sample`; "random": faiss' k random rows), then
    ``n_iter`` faiss Lloyd iterations. The first fit runs on every point. Each resampling round
    (Vo et al., ``hierarchical_kmeans_gpu.hierarchical_kmeans_with_resampling``) takes the
    :func:`resampling_size` points closest to their centroid in every cluster, runs a fresh fit
    (new seeding, seeded per round) on their union and reassigns every point to the new
    centroids. A fresh fit, not a warm start: only re-seeding lets the number of centroids per
    region change, so that dense regions give up centroids to the tail. The result is the last
    fit's centroids and every point's nearest one among them.
    weights: optional float [n] >= 0 (weighted k-means; inertia is then weighted too).
    max_points_per_centroid: run all Lloyd iterations but the last on a seeded subsample of that
    many points per centroid (faiss' own subsampling; None = every point); the last iteration, the
    assignment and the inertia are always over every point. Deterministic for a given seed on CPU
    (with resampling_rounds=0 bitwise the same as a plain fit).
    Raises ValueError on bad shapes, NaN/inf, k > n.
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
    if max_points_per_centroid is not None and max_points_per_centroid < 1:
        raise ValueError(f"max_points_per_centroid must be >= 1 or None, got {max_points_per_centroid}")
    resolve_init_sample(init_sample, k, n)  # validate before any work
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be finite, non-negative, not all zero, shape ({n},); got shape {w.shape}")
    if spherical:
        x = _normalize_rows(x)
    gpu = _use_gpu(use_gpu)
    device = _seeding_device(use_gpu)

    def fit(points: np.ndarray, pw: np.ndarray | None, ss: np.random.SeedSequence, faiss_seed: int) -> np.ndarray:
        """One fresh k-means of ``points``: seeding from ``ss``, then faiss' Lloyd iterations."""
        rng = np.random.default_rng(ss)
        init_c = None
        if init == "kmeans++":
            init_c = kmeanspp_init(points, k, rng, sample=init_sample, weights=pw, device=device)
        return _faiss_train(
            points, k, n_iter=n_iter, seed=faiss_seed, spherical=spherical, gpu=gpu, init_centroids=init_c,
            weights=pw, max_points_per_centroid=max_points_per_centroid,
        )

    # Round 0 keeps the plain fit's seeds; round j draws from the child SeedSequence(seed, spawn_key=(j,)).
    centroids = fit(x, w, np.random.SeedSequence(seed), seed)
    assignment, dist = assign_nearest(x, centroids, spherical=spherical, use_gpu=gpu)
    r = resampling_size(n, k, resampling_fraction)
    for j in range(1, resampling_rounds + 1):
        ss = np.random.SeedSequence(seed, spawn_key=(j,))
        sel = _closest_per_cluster(assignment, dist, r)
        if sel.size < k:
            # faiss needs >= k training points; empty clusters can leave fewer. Top up with the
            # remaining points in seeded random order (rare, and only matters for tiny inputs).
            rest = np.setdiff1d(np.arange(n), sel, assume_unique=True)
            extra = np.random.default_rng(ss.spawn(1)[0]).permutation(rest)[: k - sel.size]
            sel = np.sort(np.concatenate([sel, extra]))
        faiss_seed = int(ss.generate_state(1)[0] & 0x7FFFFFFF)
        centroids = fit(np.ascontiguousarray(x[sel]), None if w is None else w[sel], ss, faiss_seed)
        assignment, dist = assign_nearest(x, centroids, spherical=spherical, use_gpu=gpu)

    assignment = assignment.astype(np.int64)
    sizes = np.bincount(assignment, minlength=k).astype(np.int64)
    inertia = float(np.sum(dist, dtype=np.float64) if w is None else np.dot(dist.astype(np.float64), w))
    return KMeansResult(centroids=centroids, assignment=assignment, sizes=sizes, inertia=inertia)
