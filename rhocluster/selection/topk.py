"""Exact top-k per group over a corpus that does not fit in memory (the whole-leaf and corpus-wide
rankings of the static masks).

The k highest scores of each group are found by a radix select on the scores' order-preserving 32-bit
keys: four passes over the shards, each histogramming the next 8 bits of the keys that still match their
group's prefix, fix one byte of every group's threshold. Memory is ``n_groups x 256`` counters whatever
the corpus size; only one shard's arrays are held at a time. Written here because neither numpy nor
faiss selects per group across files: numpy's partition needs all values in memory (14B tokens) and
splitting the quota among shards first ranks inside (group, shard) cells instead of the whole group.

Ties at a group's threshold are taken in corpus order (shard, then flat position), so exactly k tokens
are kept and the result does not depend on how the work is split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

__all__ = ["order_keys", "GroupThresholds", "group_thresholds", "top_mask"]

_DIGIT_BITS = 8
_PASSES = 32 // _DIGIT_BITS

# One shard's valid tokens: (group id int [n], order key uint32 [n]), in flat position order.
ShardKeys = tuple[np.ndarray, np.ndarray]


def order_keys(scores: np.ndarray) -> np.ndarray:
    """uint32 keys ordered like the float32 ``scores`` (higher score, higher key); NaN raises."""
    s = np.ascontiguousarray(scores, dtype=np.float32)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN at ranked positions")
    bits = s.view(np.uint32)
    negative = (bits & np.uint32(0x80000000)) != 0
    # -0.0 and +0.0 compare equal as floats: give them one key
    bits = np.where(s == 0, np.uint32(0), bits)
    return np.where(negative & (s != 0), ~bits, bits | np.uint32(0x80000000)).astype(np.uint32)


@dataclass(frozen=True)
class GroupThresholds:
    """Per group g: keep every token with key > ``key[g]`` and the first ``ties[g]`` tokens (corpus
    order) with key == ``key[g]``; ``ties[g] == 0`` with ``key[g] == 2**32 - 1`` and nothing above means
    keep none."""

    key: np.ndarray  # uint32 [G]
    ties: np.ndarray  # int64 [G]


def group_thresholds(shards: Callable[[], Iterable[ShardKeys]], quotas: np.ndarray) -> GroupThresholds:
    """Thresholds selecting exactly ``quotas[g]`` tokens of every group g (never more than it has).

    ``shards()`` yields each shard's (group ids, keys) afresh; it is called once per radix pass.
    """
    quotas = np.asarray(quotas, dtype=np.int64)
    n_groups = quotas.shape[0]
    if (quotas < 0).any():
        raise ValueError("quotas must be non-negative")
    prefix = np.zeros(n_groups, dtype=np.uint64)  # bits of the threshold fixed so far
    need = quotas.copy()  # tokens still to take among those matching the prefix
    counted = np.zeros(n_groups, dtype=np.int64)
    for p in range(_PASSES):
        high = 32 - p * _DIGIT_BITS  # bits above `shift` are fixed
        shift = high - _DIGIT_BITS
        hist = np.zeros(n_groups * 256, dtype=np.int64)
        for groups, keys in shards():
            g = np.asarray(groups, dtype=np.int64)
            k = np.asarray(keys, dtype=np.uint64)
            if g.size and (g.min() < 0 or g.max() >= n_groups):
                raise ValueError(f"group ids must lie in [0, {n_groups})")
            if p == 0:
                counted += np.bincount(g, minlength=n_groups)
                match = np.ones(g.shape, dtype=bool)
            else:
                match = (k >> np.uint64(high)) == (prefix[g] >> np.uint64(high))
            digit = (k[match] >> np.uint64(shift)) & np.uint64(255)
            hist += np.bincount(g[match] * 256 + digit.astype(np.int64), minlength=n_groups * 256)
        if p == 0:
            over = quotas > counted
            if over.any():
                g = int(np.flatnonzero(over)[0])
                raise ValueError(f"group {g}: quota {int(quotas[g])} but only {int(counted[g])} tokens")
        hist = hist.reshape(n_groups, 256)
        # From the highest digit down: the digit where the running count reaches `need`.
        above = np.cumsum(hist[:, ::-1], axis=1)  # above[:, j]: tokens with digit >= 255 - j
        reach = np.argmax(above >= np.maximum(need, 1)[:, None], axis=1)
        digit = (255 - reach).astype(np.uint64)
        taken_above = np.where(reach > 0, above[np.arange(n_groups), reach - 1], 0)
        prefix = prefix | (digit << np.uint64(shift))
        need = need - taken_above
    empty = quotas == 0
    key = np.where(empty, np.uint64(0xFFFFFFFF), prefix).astype(np.uint32)
    return GroupThresholds(key=key, ties=np.where(empty, 0, need).astype(np.int64))


def top_mask(groups: np.ndarray, keys: np.ndarray, thresholds: GroupThresholds, ties_taken: np.ndarray) -> np.ndarray:
    """Which of one shard's tokens (group ids int [n], keys uint32 [n], flat order) the thresholds keep.

    ``ties_taken`` (int64 [G]) counts the threshold ties kept in earlier shards; it is updated in place.
    Returns bool [n].
    """
    g = np.asarray(groups, dtype=np.int64)
    k = np.asarray(keys, dtype=np.uint32)
    t = thresholds.key[g]
    keep = k > t
    tie = np.flatnonzero(k == t)
    if tie.size:
        tg = g[tie]
        order = np.argsort(tg, kind="stable")  # corpus order inside each group
        sorted_g = tg[order]
        rank = np.arange(order.size) - np.searchsorted(sorted_g, sorted_g, side="left")
        take = rank < (thresholds.ties[sorted_g] - ties_taken[sorted_g])
        keep[tie[order[take]]] = True
        np.add.at(ties_taken, sorted_g, 1)
        np.minimum(ties_taken, thresholds.ties, out=ties_taken)
    return keep
