"""The kinds of static mask (a variant row's ``mask:``), declared once: each kind's name, the per-token
inputs it reads and the function that writes its masks. The variant table's checks, the schema's enum
(tested), the workflow's one mask rule (``select_tokens``: its inputs and params) and the trainer's
settings all derive from this registry, so a new kind is one entry here and its function.

Light on purpose: the workflow imports it while it builds the DAG; a kind's function is imported only
when a job runs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = ["KINDS", "RENAMED", "MaskFiles", "MaskKind", "kind_reads", "select_masks"]

# What a kind may read besides the shards: every token's leaf id ("leaves", from its seed's cluster
# tree), the tree's level directories ("levels"), the fixed excess loss's two terms ("excess": base and
# reference loss) and every token's distance to its leaf's centroid ("dist").
READS = ("leaves", "levels", "excess", "dist")
LEAF_POLICIES = ("random", "closest", "excess_loss")


@dataclass(frozen=True)
class MaskKind:
    """One kind of static mask."""

    name: str
    reads: tuple[str, ...]  # inputs every mask of this kind reads (READS)
    function: str  # "module:function", called as function(files, settings) -> summary dict
    description: str
    random: bool = False  # drawn at random with the training seed (one mask per seed)

    def select(self, files: MaskFiles, settings: Mapping[str, Any]) -> dict:
        """Write every shard's mask and the summary; return the summary."""
        module, name = self.function.split(":")
        fn: Callable[[MaskFiles, Mapping[str, Any]], dict] = getattr(importlib.import_module(module), name)
        return fn(files, settings)


@dataclass(frozen=True)
class MaskFiles:
    """A mask job's files: the web shards (prefixes), its inputs (empty where the kind reads none) and outputs."""

    prefixes: Sequence[str]
    out_masks: Sequence[str]
    out_summary: str
    leaves: Sequence[str] = ()
    levels: Sequence[str] = ()
    base_loss: Sequence[str] = ()
    ref_loss: Sequence[str] = ()
    dist: Sequence[str] = ()


KINDS: dict[str, MaskKind] = {
    kind.name: kind
    for kind in (
        MaskKind("random", (), "rhocluster.selection.stage:random_kind", "a uniform random budget of the tokens", True),
        MaskKind(
            "excess_static", ("excess",), "rhocluster.selection.stage:excess_static_kind",
            "the corpus-wide top budget by the fixed excess loss (base model loss - reference loss)",
        ),
        MaskKind(
            "balanced", ("leaves", "levels"), "rhocluster.selection.stage:balanced_kind",
            "Vo et al.'s balanced sampling of the token cluster tree, each leaf filled by leaf_policy",
        ),
        MaskKind(
            "cluster_filter", ("leaves", "excess"), "rhocluster.selection.leaf_excess:cluster_filter_kind",
            "whole leaves, best mean fixed excess loss first, until the budget",
        ),
        MaskKind(
            "excess_smoothed", ("leaves", "excess"), "rhocluster.selection.leaf_excess:excess_smoothed_kind",
            "fixed excess loss shrunk toward its leaf's mean (shrinkage), then the corpus-wide top budget",
        ),
    )
}
# Former names of kinds: a row using one is refused with the new name.
RENAMED = {"top_excess": "excess_static"}


def kind_reads(kind: str, leaf_policy: str | None = None) -> tuple[str, ...]:
    """Everything a mask of ``kind`` reads (READS order); a balanced mask's ``leaf_policy`` adds its scores."""
    reads = set(KINDS[kind].reads)
    if leaf_policy == "excess_loss":
        reads.add("excess")
    elif leaf_policy == "closest":
        reads.add("dist")
    return tuple(r for r in READS if r in reads)


def select_masks(kind: str, files: MaskFiles, settings: Mapping[str, Any]) -> dict:
    """Run ``kind``'s function: ``settings`` holds ``budget`` and ``seed``, and the row's ``leaf_policy``
    and ``shrinkage`` where it has them."""
    if kind not in KINDS:
        hint = f" (renamed to {RENAMED[kind]})" if kind in RENAMED else ""
        raise ValueError(f"mask kind {kind!r}{hint}; expected one of {', '.join(KINDS)}")
    return KINDS[kind].select(files, settings)
