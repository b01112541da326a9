"""Bottom-up hierarchical k-means (Vo et al. 2024): level 1 clusters the token sample, level l
clusters the centroids of level l-1. Each level is stored in its own directory so that each
Snakemake rule owns one level and changing level l reruns levels >= l only.

On-disk layout of a level directory::

    centroids.npy  float32 [k, d]
    parents.npy    int32   [n_points]  cluster of each input point (level 1: of each sample
                                       token; level l > 1: parent of each level-(l-1) cluster)
    sizes.npy      int64   [k]         sample tokens (leaf points) under each cluster
    summary.json   {"k", "n_points", "d", "inertia", "n_empty", "total_size", "meta"}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rhocluster.clustering.kmeans import KMeansResult, kmeans
from rhocluster.common.atomic import atomic_dir

__all__ = [
    "LevelData",
    "fit_level",
    "fit_and_save_level",
    "fit_hierarchy",
    "save_level",
    "load_level",
    "load_hierarchy",
    "leaf_ancestors",
    "check_hierarchy",
]


@dataclass
class LevelData:
    """One stored level: centroids float32 [k, d], parents int32 [n_points], sizes int64 [k],
    summary (the parsed summary.json)."""

    centroids: np.ndarray
    parents: np.ndarray
    sizes: np.ndarray
    summary: dict

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.parents.shape[0])


def _aggregate(assignment: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Exact int64 sum of ``weights`` per cluster (bincount would go through float64)."""
    out = np.zeros(k, dtype=np.int64)
    np.add.at(out, assignment, weights)
    return out


def fit_level(
    points: np.ndarray, k: int, *, weights: np.ndarray | None = None, weighted: bool = False, **kmeans_kwargs
) -> KMeansResult:
    """k-means of one level. points: float [n, d] (level 1: token sample; level l: centroids of
    level l-1). weights: optional int64 [n] leaf-point counts of the input points (the sizes of
    level l-1). By default k-means itself stays unweighted (Vo et al.: every child centroid
    counts once, so upper levels cover the concept space instead of following its density);
    ``weighted=True`` weights each centroid by its size. Either way the returned ``sizes`` are
    the aggregated weights, so that every level counts sample tokens.
    """
    w = None
    if weights is not None:
        w = np.asarray(weights)
        n = np.asarray(points).shape[0]
        if w.shape != (n,):
            raise ValueError(f"weights must have shape ({n},), got {w.shape}")
        if not np.issubdtype(w.dtype, np.integer) or (w < 0).any():
            raise ValueError("weights must be non-negative integers (leaf-point counts)")
    elif weighted:
        raise ValueError("weighted=True needs the child sizes as weights")
    res = kmeans(points, k, weights=w if weighted else None, **kmeans_kwargs)
    if w is None:
        return res
    return dataclasses.replace(res, sizes=_aggregate(res.assignment, w.astype(np.int64), res.centroids.shape[0]))


def fit_and_save_level(
    points_path: Path,
    out_dir: Path,
    level: int,
    params: dict,
    *,
    child_sizes_path: Path | None = None,
    seed: int = 0,
    spherical: bool = False,
) -> KMeansResult:
    """The cluster_level stage: fit level ``level`` from its points file and save it (see module doc).

    params: the level's config (``k``, ``n_iter``, ``init``, ``init_sample``, ``resampling_rounds``,
    ``resampling_fraction``, ``weighted``, ``max_points_per_centroid``; absent keys take the
    schema's defaults). With ``resampling_rounds`` > 0 the level is Vo et al.'s
    resampling-clustering (:func:`rhocluster.clustering.kmeans.kmeans`). Errors name the level.
    """
    points = np.load(points_path, mmap_mode="r")
    weights = np.load(child_sizes_path) if child_sizes_path is not None else None
    k = int(params["k"])
    if k > points.shape[0]:
        what = "sampled tokens" if level == 1 else f"clusters at level {level - 1}"
        raise ValueError(
            f"level {level}: k={k} clusters requested but only n={points.shape[0]} points ({what}) "
            f"in {points_path} (need k <= n)"
        )
    result = fit_level(
        np.asarray(points, dtype=np.float32),
        k,
        weights=weights,
        weighted=bool(params.get("weighted", False)) and level > 1,
        n_iter=params.get("n_iter", 50),
        seed=seed,
        init=params.get("init", "kmeans++"),
        spherical=spherical,
        resampling_rounds=params.get("resampling_rounds", 0),
        resampling_fraction=params.get("resampling_fraction", 0.5),
        max_points_per_centroid=params.get("max_points_per_centroid"),
        init_sample=params.get("init_sample"),
    )
    save_level(result, Path(out_dir), {"level": int(level), "seed": int(seed), "spherical": bool(spherical), **params})
    return result


def fit_hierarchy(points: np.ndarray, ks: list[int], **kmeans_kwargs) -> list[KMeansResult]:
    """All levels in one call (tests, tiny runs): ks = clusters per level, bottom-up."""
    results: list[KMeansResult] = []
    for level, k in enumerate(ks):
        if level == 0:
            results.append(fit_level(points, k, **kmeans_kwargs))
        else:
            prev = results[-1]
            results.append(fit_level(prev.centroids, k, weights=prev.sizes, **kmeans_kwargs))
    return results


def save_level(result: KMeansResult, out_dir: Path, meta: dict) -> None:
    """Write one level to ``out_dir`` atomically (:func:`~rhocluster.common.atomic.atomic_dir`), so a
    killed job never leaves a half-written level that a later rule could read."""
    out_dir = Path(out_dir)
    k, d = result.centroids.shape
    n_points = int(result.assignment.shape[0])
    if result.sizes.shape != (k,):
        raise ValueError(f"sizes must have shape ({k},), got {result.sizes.shape}")
    summary = {
        "k": int(k),
        "n_points": n_points,
        "d": int(d),
        "inertia": float(result.inertia),
        "n_empty": int((result.sizes == 0).sum()),
        "total_size": int(result.sizes.sum()),
        "meta": meta,
    }
    with atomic_dir(out_dir) as tmp:
        np.save(tmp / "centroids.npy", np.ascontiguousarray(result.centroids, dtype=np.float32))
        np.save(tmp / "parents.npy", result.assignment.astype(np.int32))
        np.save(tmp / "sizes.npy", result.sizes.astype(np.int64))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def load_level(in_dir: Path) -> LevelData:
    """Read a level written by :func:`save_level` and check that its files agree."""
    in_dir = Path(in_dir)
    centroids = np.load(in_dir / "centroids.npy")
    parents = np.load(in_dir / "parents.npy")
    sizes = np.load(in_dir / "sizes.npy")
    summary = json.loads((in_dir / "summary.json").read_text())
    k = summary["k"]
    problems = []
    if centroids.dtype != np.float32 or centroids.ndim != 2 or centroids.shape[0] != k:
        problems.append(f"centroids {centroids.dtype}{centroids.shape}, expected float32 [{k}, d]")
    if parents.dtype != np.int32 or parents.shape != (summary["n_points"],):
        problems.append(f"parents {parents.dtype}{parents.shape}, expected int32 [{summary['n_points']}]")
    elif parents.size and (parents.min() < 0 or parents.max() >= k):
        problems.append(f"parents out of range [0, {k})")
    if sizes.dtype != np.int64 or sizes.shape != (k,):
        problems.append(f"sizes {sizes.dtype}{sizes.shape}, expected int64 [{k}]")
    elif (sizes < 0).any() or int(sizes.sum()) != summary["total_size"]:
        problems.append("sizes negative or not summing to summary total_size")
    if problems:
        raise ValueError(f"inconsistent level in {in_dir}: " + "; ".join(problems))
    return LevelData(centroids=centroids, parents=parents, sizes=sizes, summary=summary)


def leaf_ancestors(parent_maps: list[np.ndarray]) -> np.ndarray:
    """parent_maps[i]: int [k_{i+1}] mapping level-(i+1) cluster ids to level-(i+2) ids
    (i.e. the parents.npy of levels 2..L). Returns int32 [k1, L]: ancestor of each leaf at
    every level, column 0 being the leaf itself."""
    if not parent_maps:
        raise ValueError("need at least one parent map (a hierarchy of >= 2 levels)")
    k1 = int(np.asarray(parent_maps[0]).shape[0])
    out = np.empty((k1, len(parent_maps) + 1), dtype=np.int32)
    out[:, 0] = np.arange(k1, dtype=np.int32)
    for j, pm in enumerate(parent_maps):
        pm = np.asarray(pm)
        if pm.ndim != 1:
            raise ValueError(f"parent_maps[{j}] must be 1-D, got shape {pm.shape}")
        col = out[:, j]
        if col.size and (col.max() >= pm.shape[0]):
            raise ValueError(f"parent_maps[{j}] has {pm.shape[0]} entries but ids up to {col.max()} point into it")
        out[:, j + 1] = pm[col]
    return out


def check_hierarchy(parent_maps: list[np.ndarray], sizes: list[np.ndarray]) -> np.ndarray:
    """Validate a hierarchy: sizes[l] int64 [k_{l+1}] per level (bottom-up), parent_maps[l] maps
    level-(l+1) ids to level-(l+2) ids. Checks that every map covers every cluster of its level
    with a valid parent (so each leaf has exactly one ancestor per level) and that sizes add up
    level to level. Returns the int32 [k1, L] ancestors; raises ValueError on any violation."""
    if len(sizes) != len(parent_maps) + 1:
        raise ValueError(f"{len(sizes)} size arrays for {len(parent_maps)} parent maps (need one more)")
    for j, pm in enumerate(parent_maps):
        pm = np.asarray(pm)
        k_child, k_parent = len(sizes[j]), len(sizes[j + 1])
        if pm.shape != (k_child,):
            raise ValueError(f"level {j + 2}: parent map has shape {pm.shape}, expected ({k_child},)")
        if k_child and (pm.min() < 0 or pm.max() >= k_parent):
            raise ValueError(f"level {j + 2}: parent ids outside [0, {k_parent})")
        expect = _aggregate(pm, np.asarray(sizes[j], dtype=np.int64), k_parent)
        if not np.array_equal(expect, np.asarray(sizes[j + 1], dtype=np.int64)):
            bad = int(np.flatnonzero(expect != sizes[j + 1])[0])
            raise ValueError(
                f"level {j + 2}: size of cluster {bad} is {int(sizes[j + 1][bad])} "
                f"but its children hold {int(expect[bad])}"
            )
    anc = leaf_ancestors(list(parent_maps)) if parent_maps else np.arange(len(sizes[0]), dtype=np.int32)[:, None]
    if (anc < 0).any():
        raise ValueError("a leaf has no ancestor at some level")
    return anc


def load_hierarchy(level_dirs: list[Path]) -> tuple[list[LevelData], np.ndarray]:
    """Load levels 1..L (bottom-up order) and check them together. Returns (levels, ancestors
    int32 [k1, L])."""
    levels = [load_level(p) for p in level_dirs]
    for j in range(1, len(levels)):
        if levels[j].n_points != levels[j - 1].k:
            raise ValueError(
                f"level {j + 1} ({level_dirs[j]}) clustered {levels[j].n_points} points "
                f"but level {j} has {levels[j - 1].k} clusters"
            )
    anc = check_hierarchy([lv.parents for lv in levels[1:]], [lv.sizes for lv in levels])
    return levels, anc
