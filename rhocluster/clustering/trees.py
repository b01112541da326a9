"""Which cluster trees a run fits, and which tree each CPT seed's cluster rows use.

By default (``clustering.trees: per_seed``) every training seed ``cpt.seeds[i]`` gets its own tree
``s{i}``: its own embedding sample draw, projection and k-means seeds, all derived from that training
seed, so that the bootstrap over seeds also covers the variance of the clustering (the reference
model, the base model and the corpus stay shared). ``shared`` fits one tree (``s0``, from the first
seed) for every seed: cheaper at scale, and the tables then say that the intervals leave the
clustering's variance out.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["TREE_MODES", "tree_name", "tree_seeds", "trees_note"]

TREE_MODES = ("per_seed", "shared")


def _mode(config: Mapping) -> str:
    mode = (config.get("clustering") or {}).get("trees", "per_seed")
    if mode not in TREE_MODES:
        raise ValueError(f"clustering.trees: {mode!r}; expected one of {', '.join(TREE_MODES)}")
    return mode


def tree_name(config: Mapping, replicate: int) -> str:
    """The tree the cluster rows of the ``replicate``-th training seed use (``s0``, ``s1``, ...)."""
    return f"s{replicate}" if _mode(config) == "per_seed" else "s0"


def tree_seeds(config: Mapping, seeds: list[int]) -> dict[str, int]:
    """Every tree the run fits, with the seed its sample draw, projection and k-means derive from:
    the training seed of its replicate (``seeds`` is ``cpt.seeds``)."""
    if _mode(config) == "shared":
        return {"s0": seeds[0]}
    return {f"s{i}": seed for i, seed in enumerate(seeds)}


def trees_note(config: Mapping, n_seeds: int) -> str:
    """One sentence for table captions: whether the intervals of the cluster rows cover the clustering."""
    if n_seeds < 2:
        return ""
    if _mode(config) == "per_seed":
        return (
            "Each seed's cluster rows use their own cluster tree (embedding sample, projection and k-means "
            "seeds drawn from the training seed), so the intervals include the variance of the clustering."
        )
    return (
        "All seeds share one cluster tree (clustering.trees: shared): the intervals of the cluster rows "
        "leave out the variance of the clustering."
    )
