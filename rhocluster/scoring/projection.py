"""Embedding transform fitted on the token sample and applied again at assignment time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rhocluster.data.atomic import atomic_path


@dataclass
class Projection:
    """x -> normalize(x) -> (x - mean) @ matrix; ``matrix`` float32 [d_in, d_out] or None (identity)."""

    normalize: str
    mean: np.ndarray | None
    matrix: np.ndarray | None

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

    def save(self, path: Path | str) -> None:
        """Write an .npz atomically."""
        arrays = {"normalize": np.array(self.normalize)}
        if self.mean is not None:
            arrays["mean"] = self.mean
        if self.matrix is not None:
            arrays["matrix"] = self.matrix
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
            )


def fit_projection(sample: np.ndarray, kind: str, dim: int, normalize: str, seed: int) -> Projection:
    """Fit PCA (scikit-learn), draw a seeded Gaussian random projection, or keep the identity."""
    base = Projection(normalize=normalize, mean=None, matrix=None)
    x = base.apply(sample)
    d = x.shape[1]
    if kind == "none":
        return base
    if dim > d:
        raise ValueError(f"scoring.projection.dim={dim} exceeds the embedding width {d}")
    if kind == "pca":
        from sklearn.decomposition import PCA

        if dim > x.shape[0]:
            raise ValueError(f"PCA to {dim} dims needs at least {dim} sampled tokens, got {x.shape[0]}")
        pca = PCA(n_components=dim, svd_solver="full", random_state=seed).fit(x)
        return Projection(normalize, pca.mean_.astype(np.float32), pca.components_.T.astype(np.float32))
    if kind == "random":
        rng = np.random.default_rng(seed)
        matrix = rng.standard_normal((d, dim)).astype(np.float32) / np.sqrt(dim)
        return Projection(normalize, None, matrix)
    raise ValueError(f"scoring.projection.kind={kind!r}: expected none, pca or random")
