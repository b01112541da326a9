"""The CPT variants as data: one table (``variants.yaml`` plus a config's ``variant_table``) that the
rules, the planner, the trainer's settings and the reports read.

A row says which tokens the loss uses (``tokens``: all, a static ``mask``, or live ``slm`` ranking)
and how they are chosen. Everything else a part of the workflow needs to know about a variant (which
rule makes its mask, which per-token files it reads, whether it needs the cluster tree) is derived here,
so adding a variant is adding a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from rhocluster.clustering.trees import tree_name

__all__ = [
    "CptModel",
    "Variant",
    "VariantError",
    "builtin_table",
    "cpt_models",
    "cpt_seeds",
    "load_variants",
    "replicate_name",
    "variant_rows",
]

TOKENS = ("all", "mask", "slm")
MASKS = ("random", "top_excess", "balanced", "cluster_filter", "excess_smoothed")
# masks chosen over the cluster tree's leaves (they need every token's leaf id)
TREE_MASKS = ("balanced", "cluster_filter", "excess_smoothed")
LEAF_POLICIES = ("random", "closest", "excess_loss")
KEYS = ("tokens", "mask", "leaf_policy", "group_level", "shrinkage", "label", "summary")
# Names that are models but not variants (and path components of the workflow).
RESERVED = ("base", "reference", "all", "hf", "mcore")
_TABLE = Path(__file__).with_name("variants.yaml")


class VariantError(ValueError):
    """A variant declaration or the ``variants`` list is invalid; the message names the variant and key."""


@dataclass(frozen=True)
class Variant:
    """One row of the variant table."""

    name: str
    tokens: str
    summary: str
    label: str
    mask: str | None = None
    leaf_policy: str | None = None
    group_level: int | None = None
    shrinkage: float | None = None

    @property
    def selection(self) -> str:
        """The trainer's ``TrainConfig.selection``: all, mask or slm."""
        return self.tokens

    @property
    def uses_tree(self) -> bool:
        """Needs the cluster tree and every token's leaf id (balanced masks, grouped SLM)."""
        return self.mask in TREE_MASKS or self.group_level is not None

    @property
    def ranks_fixed_excess(self) -> bool:
        """Reads the fixed excess loss (base loss - reference loss) of every corpus token."""
        return self.mask in ("top_excess", "cluster_filter", "excess_smoothed") or self.leaf_policy == "excess_loss"

    @property
    def reads_ref_loss_live(self) -> bool:
        """The trainer reads the reference loss (live SLM ranking)."""
        return self.tokens == "slm"

    def describe(self) -> str:
        """One line: what is ranked, when and over which tokens."""
        return self.summary


def builtin_table() -> dict[str, dict]:
    """The declared rows shipped with the package (``rhocluster/variants.yaml``)."""
    return yaml.safe_load(_TABLE.read_text())


def _fail(name: str, key: str, message: str) -> VariantError:
    return VariantError(f"variant_table.{name}.{key}: {message}")


def _parse(name: str, row: Any, n_levels: int | None) -> Variant:
    if not isinstance(row, Mapping):
        raise VariantError(f"variant_table.{name}: expected a mapping of {', '.join(KEYS)}, got {row!r}")
    unknown = sorted(set(row) - set(KEYS))
    if unknown:
        raise _fail(name, unknown[0], f"unknown key; valid keys: {', '.join(KEYS)}")
    if name in RESERVED:
        raise VariantError(f"variant_table.{name}: '{name}' is reserved (a model or path name)")
    tokens = row.get("tokens")
    if tokens not in TOKENS:
        raise _fail(name, "tokens", f"{tokens!r}; expected one of {', '.join(TOKENS)}")
    mask, policy, level = row.get("mask"), row.get("leaf_policy"), row.get("group_level")
    if tokens == "mask" and mask not in MASKS:
        raise _fail(name, "mask", f"{mask!r}; a tokens: mask row needs one of {', '.join(MASKS)}")
    if tokens != "mask" and mask is not None:
        raise _fail(name, "mask", f"only for tokens: mask (this row has tokens: {tokens})")
    if mask == "balanced":
        if policy not in LEAF_POLICIES:
            raise _fail(name, "leaf_policy", f"{policy!r}; a balanced mask needs one of {', '.join(LEAF_POLICIES)}")
    elif policy is not None:
        raise _fail(name, "leaf_policy", "only for mask: balanced")
    shrinkage = row.get("shrinkage")
    if mask == "excess_smoothed":
        shrinkage = 0.5 if shrinkage is None else shrinkage
        if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)) or not 0 <= shrinkage <= 1:
            raise _fail(name, "shrinkage", f"{shrinkage!r}; expected a weight in [0, 1] (0: excess_static's ranking)")
        shrinkage = float(shrinkage)
    elif shrinkage is not None:
        raise _fail(name, "shrinkage", "only for mask: excess_smoothed")
    if level is not None:
        if tokens != "slm":
            raise _fail(name, "group_level", f"only for tokens: slm (this row has tokens: {tokens})")
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise _fail(name, "group_level", f"{level!r}; expected a level number >= 1 (1 = leaves)")
        if n_levels is not None and level > n_levels:
            raise _fail(name, "group_level", f"{level} but clustering.levels has {n_levels} levels")
    summary = row.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise _fail(name, "summary", "a one-line description is required")
    label = row.get("label", name)
    if not isinstance(label, str) or not label.strip():
        raise _fail(name, "label", "a short legend label (text) is expected")
    return Variant(name, tokens, summary.strip(), label.strip(), mask, policy, level, shrinkage)


def variant_rows(config: Mapping) -> dict[str, Variant]:
    """Every declared row: the built-in table updated by ``config['variant_table']`` (whole rows replaced)."""
    table = {**builtin_table(), **dict(config.get("variant_table") or {})}
    n_levels = len(config["clustering"]["levels"]) if "clustering" in config else None
    return {name: _parse(str(name), row, n_levels) for name, row in table.items()}


def load_variants(config: Mapping) -> dict[str, Variant]:
    """The variants to train (``config['variants']``, in that order), each checked against its row.

    Raises :class:`VariantError` naming the variant and key for an undeclared name or a bad row.
    """
    rows = variant_rows(config)
    names = list(config.get("variants") or [])
    missing = [n for n in names if n not in rows]
    if missing:
        raise VariantError(
            f"variants: {', '.join(map(repr, missing))} not declared; declared rows: {', '.join(rows)} "
            "(add a row to variant_table)"
        )
    if len(set(names)) != len(names):
        raise VariantError(f"variants: names repeat in {names}")
    return {n: rows[n] for n in names}


@dataclass(frozen=True)
class CptModel:
    """One trained CPT model: a variant at one training seed (data order and mask sampling)."""

    name: str
    variant: Variant
    seed: int
    replicate: int  # 0 for the first seed (the model is named after its variant), then 1, 2, ...
    tree: str | None = None  # the cluster tree its row uses (rhocluster.clustering.trees), if any

    @property
    def mask_key(self) -> str:
        """Whose mask files it trains on: its own where the mask depends on its seed (drawn at random
        with it, or balanced over its seed's own cluster tree), else its variant's (a mask ranked over
        the corpus, or over a tree every seed shares, is the same for every seed)."""
        v = self.variant
        own_tree = self.tree not in (None, "s0")
        seeded = v.mask == "random" or (v.mask in TREE_MASKS and (v.leaf_policy == "random" or own_tree))
        return self.name if seeded else v.name


def cpt_seeds(config: Mapping) -> list[int]:
    """``cpt.seeds``, or the master seed alone."""
    seeds = (config.get("cpt") or {}).get("seeds") or [config["seed"]]
    if len(set(seeds)) != len(seeds):
        raise VariantError(f"cpt.seeds: seeds repeat in {seeds}")
    return [int(s) for s in seeds]


def replicate_name(variant: str, replicate: int) -> str:
    """``cluster`` for the first seed, ``cluster.s1``, ``cluster.s2``, ... for the others."""
    return variant if replicate == 0 else f"{variant}.s{replicate}"


def cpt_models(config: Mapping) -> dict[str, CptModel]:
    """Every CPT model to train: each variant of ``config['variants']`` once per seed of ``cpt.seeds``,
    the first seed's models first (in variant order), then the next seed's; rows that use the cluster
    tree get their seed's tree (``clustering.trees``)."""
    variants = load_variants(config)
    out = {}
    for i, seed in enumerate(cpt_seeds(config)):
        for name, row in variants.items():
            model = replicate_name(name, i)
            out[model] = CptModel(model, row, seed, i, tree_name(config, i) if row.uses_tree else None)
    return out
