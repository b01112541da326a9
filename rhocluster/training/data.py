"""Training data: every window of a list of shards in one fixed, seeded order.

The order depends only on the shards' sizes and the seed, never on the variant, so every CPT variant
sees the same windows in the same order and the rows of the results table differ in the token
selection only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rhocluster.data.shards import Shard, load_aligned


@dataclass
class Batch:
    """One micro-batch: ``tokens`` int64 [b, S]; side arrays are [b, S] aligned to ``tokens``."""

    tokens: np.ndarray
    valid: np.ndarray  # bool: position is a prediction target
    keep: np.ndarray | None  # bool: static token mask (None: keep every valid token)
    ref_loss: np.ndarray | None  # float32: reference-model loss per target token (SLM)
    labels: np.ndarray | None  # uint8: ground-truth label per token (accounting only)
    groups: np.ndarray | None = None  # int64: cluster group per token, -1 where not a target (grouped SLM)


class TokenStream:
    """Windows of several shards addressed by one global index, with optional per-token side files."""

    def __init__(
        self,
        shard_prefixes: Sequence[Path | str],
        masks: Sequence[Path | str] | None = None,
        ref_losses: Sequence[Path | str] | None = None,
        with_labels: bool = True,
        leaves: Sequence[Path | str] | None = None,
        group_of_leaf: np.ndarray | None = None,
        group_tree: np.ndarray | None = None,
    ):
        """``leaves`` (int32 [W, S] leaf-id files, one per shard) with ``group_of_leaf`` (int [k1]) give
        every token its cluster group; ``group_tree`` is the tree above the groups (for grouped SLM)."""
        self.shards = [Shard(p) for p in shard_prefixes]
        if not self.shards:
            raise ValueError("no training shards given")
        seq = {s.seq_len for s in self.shards}
        if len(seq) != 1:
            raise ValueError(f"shards disagree on seq_len: {sorted(seq)}")
        self.seq_len = seq.pop()
        self.masks = self._side(masks, np.uint8, "mask")
        self.ref_losses = self._side(ref_losses, np.float16, "reference loss")
        self.groups = self._side(leaves, np.int32, "leaf ids")
        if self.groups is not None and group_of_leaf is None:
            raise ValueError("leaf files given without group_of_leaf")
        self.group_of_leaf = None if group_of_leaf is None else np.asarray(group_of_leaf, dtype=np.int64)
        self.group_tree = group_tree
        self.labels = None
        if with_labels and all(s.meta.has_labels for s in self.shards):
            self.labels = [s.labels() for s in self.shards]
        sizes = np.array([s.n_windows for s in self.shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.n_windows = int(self.offsets[-1])
        self._orders: dict[tuple[int, int], np.ndarray] = {}
        if self.n_windows == 0:
            raise ValueError("training shards hold no windows")

    def _side(self, paths, dtype, what) -> list[np.ndarray] | None:
        if paths is None:
            return None
        if len(paths) != len(self.shards):
            raise ValueError(f"{len(paths)} {what} files for {len(self.shards)} shards")
        out = []
        for path, shard in zip(paths, self.shards):
            try:
                out.append(load_aligned(path, shard.shape, dtype, what))
            except ValueError as err:
                raise ValueError(f"{err} (shard {shard.prefix})") from err
        return out

    def order(self, seed: int, epoch: int) -> np.ndarray:
        """Permutation of all window indices for one epoch (seeded, variant-independent; read-only).

        The last two orders are kept: the trainer asks for the same epoch at every step, and drawing a
        permutation of millions of windows takes tens to hundreds of milliseconds.
        """
        key = (seed, epoch)
        cached = self._orders.get(key)
        if cached is None:
            cached = np.random.default_rng([seed, epoch]).permutation(self.n_windows)
            cached.flags.writeable = False
            if len(self._orders) >= 2:
                self._orders.pop(next(iter(self._orders)))
            self._orders[key] = cached
        return cached

    def sample_ids(self, seed: int, start: int, count: int) -> np.ndarray:
        """Global window ids at positions ``start .. start+count`` of the endless epoch-by-epoch stream."""
        out = np.empty(count, dtype=np.int64)
        pos = start
        filled = 0
        while filled < count:
            epoch, within = divmod(pos, self.n_windows)
            take = min(count - filled, self.n_windows - within)
            out[filled : filled + take] = self.order(seed, epoch)[within : within + take]
            filled += take
            pos += take
        return out

    def batch(self, ids: np.ndarray) -> Batch:
        """Gather the windows with global ids ``ids`` and their side arrays."""
        shard_of = np.searchsorted(self.offsets, ids, side="right") - 1
        local = ids - self.offsets[shard_of]
        tokens = np.stack([self.shards[s].window(int(w)) for s, w in zip(shard_of, local)])
        valid = np.ones(tokens.shape, dtype=bool)
        valid[:, 0] = False

        def gather(arrays, dtype):
            if arrays is None:
                return None
            return np.stack([np.asarray(arrays[s][w]) for s, w in zip(shard_of, local)]).astype(dtype)

        ref = gather(self.ref_losses, np.float32)
        if ref is not None and not np.isfinite(ref[valid]).all():
            raise ValueError(f"non-finite reference loss in windows {ids.tolist()}")
        keep = gather(self.masks, np.uint8)
        groups = None
        leaf = gather(self.groups, np.int64)
        if leaf is not None:
            if (leaf[valid] < 0).any() or (leaf[valid] >= self.group_of_leaf.size).any():
                raise ValueError(f"leaf ids outside [0, {self.group_of_leaf.size}) at targets of windows {ids.tolist()}")
            groups = np.where(valid, self.group_of_leaf[np.maximum(leaf, 0)], -1)
        return Batch(
            tokens=tokens,
            valid=valid,
            keep=None if keep is None else keep.astype(bool) & valid,
            ref_loss=ref,
            labels=gather(self.labels, np.uint8),
            groups=groups,
        )
