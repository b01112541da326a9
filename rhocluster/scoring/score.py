"""score stage: per-token loss of a model over a shard, and a seeded sample of token embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rhocluster.data.atomic import atomic_path, save_npy
from rhocluster.data.shards import Shard
from rhocluster.scoring.forward import default_device, load_causal_lm, stream_shard


def sample_positions(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """Sorted flat indices of ``n`` distinct target positions (never position 0 of a window); seeded."""
    w, s = shape
    n_valid = w * (s - 1)
    if n_valid == 0:
        return np.zeros(0, np.int64)
    pick = np.sort(np.random.default_rng(seed).choice(n_valid, size=min(n, n_valid), replace=False))
    return (pick // (s - 1)) * s + pick % (s - 1) + 1


def score_shard(
    model_dir: Path,
    shard_prefix: Path,
    out_loss: Path,
    out_sample: Path | None = None,
    *,
    batch_size: int = 32,
    layer: int = -1,
    sample_tokens: int = 0,
    seed: int = 0,
    device: str | None = None,
) -> dict:
    """Write the per-token loss (float16 [W, S], NaN at position 0) and optionally an embedding sample.

    The sample (``.npz``: ``positions`` int64 flat indices into [W, S], ``embeddings`` float16 [n, d]) holds
    hidden_states[layer] of ``sample_tokens`` seeded target positions. Both come from one forward pass.
    """
    shard = Shard(shard_prefix)
    model = load_causal_lm(model_dir, device or default_device())
    want_sample = out_sample is not None and sample_tokens > 0
    positions = sample_positions(shard.shape, sample_tokens, seed) if want_sample else np.zeros(0, np.int64)
    loss = np.empty(shard.shape, dtype=np.float16)
    emb: list[np.ndarray] = []
    s = shard.seq_len
    for start, batch_loss, hidden in stream_shard(model, shard, batch_size, layer if want_sample else None):
        b = batch_loss.shape[0]
        loss[start : start + b] = batch_loss.astype(np.float16)
        if want_sample:
            lo, hi = np.searchsorted(positions, [start * s, (start + b) * s])
            local = positions[lo:hi] - start * s
            emb.append(hidden[local // s, local % s].cpu().numpy())
    finite = np.isfinite(loss[:, 1:])
    if not finite.all():
        raise ValueError(f"shard {shard_prefix}: {int((~finite).sum())} non-finite token losses from {model_dir}")
    save_npy(out_loss, loss)
    stats = {"n_tokens": int(loss[:, 1:].size), "mean_loss": float(loss[:, 1:].astype(np.float64).mean())}
    if want_sample:
        embeddings = np.concatenate(emb) if emb else np.zeros((0, 0), np.float32)
        if not np.isfinite(embeddings).all():
            raise ValueError(f"shard {shard_prefix}: NaN/inf in sampled hidden states of layer {layer}")
        with atomic_path(out_sample, ".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, positions=positions, embeddings=embeddings.astype(np.float16))
        stats["n_sampled"] = int(len(positions))
    return stats


def pool_samples(sample_paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-shard samples: (embeddings float32 [n, d], shard index int32 [n], flat position int64 [n])."""
    embs, shards, positions = [], [], []
    for i, path in enumerate(sample_paths):
        with np.load(path) as z:
            e = z["embeddings"].astype(np.float32)
            if not np.isfinite(e).all():
                raise ValueError(f"embedding sample {path} contains NaN/inf")
            embs.append(e)
            positions.append(z["positions"])
            shards.append(np.full(len(e), i, np.int32))
    return np.concatenate(embs), np.concatenate(shards), np.concatenate(positions)
