"""Sizes and cost of one k-means level (pure arithmetic, no faiss): how many points a resampling
round takes per cluster, how many rows k-means++ seeds from, and the FLOPs of a whole level, which
the planner charges to the cluster_level jobs. rhocluster.clustering.kmeans uses the same rules."""

from __future__ import annotations

import math

__all__ = ["default_init_sample", "resolve_init_sample", "resampling_size", "kmeanspp_trials", "kmeans_flops"]


def default_init_sample(k: int) -> int:
    """Rows k-means++ seeds from when ``init_sample`` is null: 256 per centroid (faiss'
    points-per-centroid rule), at least 65536 and at most 262144, so the O(k * sample * d) seeding
    stays seconds on a CPU for k up to a few thousand. Seeding from fewer points per centroid
    misses the rare modes of long-tailed data (on a 1M-point Zipf mixture, 65 points per centroid
    cost ~1.5% inertia); for large k set ``init_sample`` (a row count, or "all") explicitly."""
    return int(min(max(256 * k, 65536), 262144))


def resolve_init_sample(init_sample: int | str | None, k: int, n: int) -> int:
    """Rows the k-means++ seeding of ``k`` centroids reads out of ``n`` points: ``init_sample`` rows
    (an int), every point ("all"; Vo et al. seed on every point they cluster) or
    :func:`default_init_sample` (None); never fewer than ``k`` nor more than ``n``."""
    if init_sample is None:
        rows = default_init_sample(k)
    elif isinstance(init_sample, str):
        if init_sample != "all":
            raise ValueError(f"init_sample must be a row count, 'all' or None, got {init_sample!r}")
        rows = n
    else:
        rows = int(init_sample)
        if rows < 1:
            raise ValueError(f"init_sample must be >= 1, got {init_sample}")
    return max(k, min(n, rows))


def resampling_size(n: int, k: int, fraction: float) -> int:
    """Points taken per cluster in a resampling round: ``ceil(fraction * n / k)``, at least 1.

    Vo et al. set this count per level as "roughly half the average cluster size" (their configs:
    10, 5 and 3 for mean sizes 20, 10 and 5), which ``fraction=0.5`` and rounding up reproduce.
    """
    return max(1, math.ceil(fraction * n / k - 1e-9))


def kmeanspp_trials(k: int) -> int:
    """Candidates per greedy k-means++ step: 2 + ln k (scikit-learn's and Vo et al.'s default)."""
    return 2 + int(math.log(k))


def kmeans_flops(
    n: int,
    k: int,
    d: int,
    *,
    n_iter: int = 20,
    init: str = "kmeans++",
    init_sample: int | str | None = None,
    resampling_rounds: int = 0,
    resampling_fraction: float = 0.5,
    max_points_per_centroid: int | None = None,
) -> dict[str, float]:
    """FLOPs of :func:`rhocluster.clustering.kmeans.kmeans` on ``n`` points of ``d`` dims, by part.

    A fit on m points: greedy k-means++ (2 x trials x k x seed rows x d) and ``n_iter`` Lloyd
    iterations (2 x m' x k x d each, m' = the faiss subsample of ``max_points_per_centroid`` per
    cluster, the last iteration on all m). The level: a fit on every point, then per resampling
    round a fit on the union of r points per cluster; each fit is followed by a nearest-centroid
    search of every point (2 x n x k x d). Returns {"seeding", "lloyd", "assign", "total"}.
    """
    r = resampling_size(n, k, resampling_fraction)
    fits = [n] + [max(k, min(n, r * k))] * int(resampling_rounds)
    seeding = lloyd = 0.0
    for m in fits:
        if init == "kmeans++":
            seeding += 2.0 * kmeanspp_trials(k) * k * resolve_init_sample(init_sample, k, m) * d
        sub = min(m, max_points_per_centroid * k) if max_points_per_centroid else m
        lloyd += 2.0 * k * d * ((n_iter - 1) * sub + m if sub < m else n_iter * m)
    assign = 2.0 * n * k * d * len(fits)
    return {"seeding": seeding, "lloyd": lloyd, "assign": assign, "total": seeding + lloyd + assign}
