"""Cluster groups for SLM ranked inside the tree (cluster_slm): every leaf's ancestor at one level, and
the tree above that level for balanced quotas."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rhocluster.clustering.hierarchy import leaf_ancestors, load_hierarchy


def cluster_groups(level_dirs: Sequence[Path | str], level: int) -> tuple[np.ndarray, np.ndarray]:
    """(group of each leaf int64 [k1], tree int64 [G, L - level + 1]) for groups at ``level`` (1 = leaves).

    ``tree`` is in ``balanced_leaf_quotas``' layout: column 0 the group ids 0..G-1, then each group's
    ancestor at every level above it.
    """
    levels, ancestors = load_hierarchy([Path(d) for d in level_dirs])
    if not 1 <= level <= len(levels):
        raise ValueError(f"group level {level}: the tree in {level_dirs[0]}.. has levels 1..{len(levels)}")
    group_of_leaf = ancestors[:, level - 1].astype(np.int64)
    above = [lv.parents for lv in levels[level:]]
    if above:
        tree = leaf_ancestors(above).astype(np.int64)
    else:
        tree = np.arange(levels[level - 1].k, dtype=np.int64)[:, None]
    return group_of_leaf, tree
