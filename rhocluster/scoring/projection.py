"""Embedding transform fitted on the token sample and applied again at assignment time.

``x -> normalize(x) -> (x - mean) @ matrix``. PCA is fitted from the covariance, accumulated in float64
one shard's sample at a time, so the pooled raw sample (tens of millions of tokens x 2048 dims at
scale) never sits in memory; its components equal scikit-learn's full-SVD PCA up to round-off, with
the same sign convention (largest-magnitude entry of each component positive).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rhocluster.common.atomic import atomic_path
from rhocluster.scoring.rows import NpyRowWriter

KINDS = ("none", "pca", "random")
NORMALIZATIONS = ("none", "l2")


@dataclass
class Projection:
    """x -> normalize(x) -> (x - mean) @ matrix; ``matrix`` float32 [d_in, d_out] or None (identity).

    ``hidden_index`` and ``position``: the representation space it was fitted in (the samples'
    ``hidden_states`` index and ``scoring.position``), checked by assign; None when not recorded.
    """

    normalize: str
    mean: np.ndarray | None
    matrix: np.ndarray | None
    hidden_index: int | None = None
    position: str | None = None

    def apply(self, x: np.ndarray) -> np.ndarray:
        """float [n, d_in] -> float32 [n, d_out]."""
        x = np.asarray(x, dtype=np.float32)
        if self.normalize == "l2":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if self.mean is not None:
            x = x - self.mean
        if self.matrix is not None:
            x = x @ self.matrix
        return np.ascontiguousarray(x, dtype=np.float32)

    def out_dim(self, d_in: int) -> int:
        """Width of the projected vectors for inputs of width ``d_in``."""
        return int(self.matrix.shape[1]) if self.matrix is not None else int(d_in)

    def save(self, path: Path | str) -> None:
        """Write an .npz atomically."""
        arrays = {"normalize": np.array(self.normalize)}
        if self.mean is not None:
            arrays["mean"] = self.mean
        if self.matrix is not None:
            arrays["matrix"] = self.matrix
        if self.hidden_index is not None and self.position is not None:
            arrays["hidden_index"] = np.array(self.hidden_index)
            arrays["position"] = np.array(self.position)
        with atomic_path(path, ".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path | str) -> "Projection":
        with np.load(path) as z:
            return cls(
                normalize=str(z["normalize"]),
                mean=z["mean"] if "mean" in z else None,
                matrix=z["matrix"] if "matrix" in z else None,
                hidden_index=int(z["hidden_index"]) if "hidden_index" in z else None,
                position=str(z["position"]) if "position" in z else None,
            )

    def check_space(self, hidden_index: int, position: str, where: str) -> None:
        """Refuse representations from another layer or position than the projection was fitted on."""
        if self.hidden_index is None or self.position is None:
            return
        if (self.hidden_index, self.position) != (hidden_index, position):
            raise ValueError(
                f"{where}: representations are hidden_states[{hidden_index}] at position {position!r}, but the "
                f"projection was fitted on samples of hidden_states[{self.hidden_index}] at {self.position!r} "
                f"(scoring.layer / scoring.position must be the same for embed_sample and assign)"
            )


class CovarianceAccumulator:
    """Running mean and covariance of rows in float64 (shifted sums, numerically stable enough for PCA)."""

    def __init__(self) -> None:
        self.n = 0
        self.shift: np.ndarray | None = None
        self.s1: np.ndarray | None = None
        self.s2: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        """Add float rows [n, d]."""
        if x.shape[0] == 0:
            return
        x64 = np.asarray(x, dtype=np.float64)
        if self.shift is None:
            self.shift = x64.mean(axis=0)
            d = x64.shape[1]
            self.s1, self.s2 = np.zeros(d), np.zeros((d, d))
        xc = x64 - self.shift
        self.n += xc.shape[0]
        self.s1 += xc.sum(axis=0)
        self.s2 += xc.T @ xc

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean [d], covariance [d, d] with the n - 1 denominator)."""
        if self.n < 2:
            raise ValueError(f"PCA needs at least 2 sampled tokens, got {self.n}")
        m = self.s1 / self.n
        cov = (self.s2 - self.n * np.outer(m, m)) / (self.n - 1)
        return self.shift + m, cov


def pca_from_covariance(mean: np.ndarray, cov: np.ndarray, dim: int, normalize: str) -> Projection:
    """Top-``dim`` eigenvectors of ``cov`` as a Projection (components sign-fixed like sklearn's svd_flip)."""
    vals, vecs = np.linalg.eigh(cov)
    comps = vecs[:, np.argsort(vals)[::-1][:dim]]  # [d, dim]
    signs = np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(dim)])
    comps = comps * np.where(signs == 0, 1.0, signs)
    return Projection(normalize, mean.astype(np.float32), np.ascontiguousarray(comps, dtype=np.float32))


def _check(kind: str, dim: int, normalize: str, d: int, n: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"scoring.projection.kind={kind!r}: expected one of {KINDS}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"scoring.normalize={normalize!r}: expected one of {NORMALIZATIONS}")
    if kind != "none" and dim > d:
        raise ValueError(f"scoring.projection.dim={dim} exceeds the embedding width {d}")
    if kind == "pca" and dim > n:
        raise ValueError(f"PCA to {dim} dims needs at least {dim} sampled tokens, got {n}")


def _random_matrix(d: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, dim)).astype(np.float32) / np.sqrt(dim)


def fit_projection(sample: np.ndarray, kind: str, dim: int, normalize: str, seed: int) -> Projection:
    """Fit PCA, draw a seeded Gaussian random projection, or keep the identity, on an in-memory sample [n, d]."""
    base = Projection(normalize=normalize, mean=None, matrix=None)
    n, d = sample.shape
    _check(kind, dim, normalize, d, n)
    if kind == "none":
        return base
    if kind == "random":
        return Projection(normalize, None, _random_matrix(d, dim, seed))
    acc = CovarianceAccumulator()
    acc.update(base.apply(sample))
    return pca_from_covariance(*acc.mean_cov(), dim, normalize)


def fit_projection_files(
    sample_paths: Sequence[Path | str],
    out_sample: Path | str,
    out_index: Path | str,
    out_projection: Path | str,
    *,
    kind: str,
    dim: int,
    normalize: str,
    seed: int,
) -> dict:
    """Fit the projection on the per-shard samples and write the projected, pooled sample.

    Writes ``out_sample`` float32 [n, d_out] (shards in the given order), ``out_index`` (.npz: ``shard``
    int32 [n] index into ``sample_paths``, ``position`` int64 [n] flat position in that shard's [W, S])
    and ``out_projection``. Streams over the files (twice for PCA); one shard's sample in memory at a time.
    """
    from rhocluster.scoring.score import iter_samples, sample_space

    counts, d = [], None
    acc = CovarianceAccumulator()
    base = Projection(normalize=normalize, mean=None, matrix=None)
    for _, e, _ in iter_samples(sample_paths):
        counts.append(e.shape[0])
        if e.shape[0]:
            d = e.shape[1]
            if kind == "pca":
                acc.update(base.apply(e))
    n = int(sum(counts))
    if n == 0 or d is None:
        raise ValueError(f"no sampled tokens in {len(sample_paths)} sample files")
    _check(kind, dim, normalize, d, n)
    if kind == "none":
        projection = base
    elif kind == "random":
        projection = Projection(normalize, None, _random_matrix(d, dim, seed))
    else:
        projection = pca_from_covariance(*acc.mean_cov(), dim, normalize)
    spaces = [sp for sp in map(sample_space, sample_paths) if sp is not None]  # all equal (iter_samples)
    if spaces:
        projection.hidden_index, projection.position = spaces[0]
    shard_idx = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    positions = np.empty(n, np.int64)
    offset = 0
    with NpyRowWriter(out_sample, (n, projection.out_dim(d)), np.float32) as writer:
        for i, e, pos in iter_samples(sample_paths):
            if e.shape[0]:
                writer.write(projection.apply(e))
            positions[offset : offset + len(pos)] = pos
            offset += len(pos)
    with atomic_path(out_index, ".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, shard=shard_idx, position=positions)
    projection.save(out_projection)
    return {
        "n": n,
        "d_in": d,
        "d_out": projection.out_dim(d),
        "kind": kind,
        "hidden_index": projection.hidden_index,
        "position": projection.position,
    }
