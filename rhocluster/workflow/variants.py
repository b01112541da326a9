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
from typing import Any, Collection, Mapping

import yaml

from rhocluster.clustering.trees import tree_name
from rhocluster.selection.kinds import KINDS, LEAF_POLICIES, RENAMED, kind_reads

__all__ = [
    "CptModel",
    "Pair",
    "Variant",
    "VariantError",
    "builtin_table",
    "cpt_models",
    "cpt_seeds",
    "load_variants",
    "replicate_name",
    "variant_pairs",
    "variant_rows",
]

TOKENS = ("all", "mask", "slm")
MASKS = tuple(KINDS)  # the kinds of static mask: rhocluster.selection.kinds
KEYS = ("tokens", "mask", "leaf_policy", "group_level", "shrinkage", "label", "summary", "compare_to", "factor")
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
    # the rows it differs from in one factor, each with that factor: ((counterpart, factor), ...)
    compare_to: tuple[tuple[str, str], ...] = ()

    @property
    def reads(self) -> tuple[str, ...]:
        """What its static mask reads besides the shards (``rhocluster.selection.kinds.kind_reads``)."""
        return kind_reads(self.mask, self.leaf_policy) if self.mask else ()

    @property
    def uses_tree(self) -> bool:
        """Needs the cluster tree and every token's leaf id (tree masks, grouped SLM)."""
        return "leaves" in self.reads or self.group_level is not None


def builtin_table() -> dict[str, dict]:
    """The declared rows shipped with the package (``rhocluster/workflow/variants.yaml``)."""
    return yaml.safe_load(_TABLE.read_text())


def _fail(name: str, key: str, message: str) -> VariantError:
    return VariantError(f"variant_table.{name}.{key}: {message}")


def _text(name: str, key: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, key, f"{value!r}; {what} (text) is expected")
    return value.strip()


def _counterparts(name: str, row: Mapping, declared: Collection[str] | None) -> tuple[tuple[str, str], ...]:
    """``compare_to`` (one row name, with ``factor``; or a mapping of row name to factor) as pairs."""
    target, factor = row.get("compare_to"), row.get("factor")
    if target is None:
        if factor is not None:
            raise _fail(name, "factor", "only with compare_to (the row this one differs from in that factor)")
        return ()
    if isinstance(target, str):
        if factor is None:
            raise _fail(name, "factor", f"compare_to: {target} needs the factor the two rows differ in")
        pairs = {target: factor}
    elif isinstance(target, Mapping) and target:
        if factor is not None:
            raise _fail(name, "factor", "compare_to is a mapping of row to factor; give each factor there")
        pairs = dict(target)
    else:
        raise _fail(name, "compare_to", f"{target!r}; expected a row name (with factor) or a mapping of row name to factor")
    out = []
    for other, text in pairs.items():
        if other == name:
            raise _fail(name, "compare_to", "a row cannot be compared with itself")
        if declared is not None and other not in declared:
            raise _fail(name, "compare_to", f"{other!r} is not a declared row; declared rows: {', '.join(declared)}")
        key = "factor" if isinstance(target, str) else f"compare_to.{other}"
        out.append((str(other), _text(name, key, text, "the factor the two rows differ in")))
    return tuple(out)


def _parse(name: str, row: Any, n_levels: int | None, declared: Collection[str] | None = None) -> Variant:
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
    if mask in RENAMED:
        raise _fail(name, "mask", f"{mask!r} is now called {RENAMED[mask]!r}")
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
    pairs = _counterparts(name, row, declared)
    return Variant(name, tokens, summary.strip(), label.strip(), mask, policy, level, shrinkage, pairs)


def variant_rows(config: Mapping) -> dict[str, Variant]:
    """Every declared row: the built-in table updated by ``config['variant_table']`` (whole rows replaced)."""
    table = {**builtin_table(), **dict(config.get("variant_table") or {})}
    n_levels = len(config["clustering"]["levels"]) if "clustering" in config else None
    declared = [str(name) for name in table]
    rows = {str(name): _parse(str(name), row, n_levels, declared) for name, row in table.items()}
    for name, row in rows.items():
        for other, _ in row.compare_to:
            if any(back == name for back, _ in rows[other].compare_to):
                raise _fail(name, "compare_to", f"{other!r} already declares {name!r} as its counterpart (one pair, one direction)")
    return rows


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
class Pair:
    """Two rows that differ in one factor (``compare_to``): the held-out pair table shows variant minus
    counterpart, seed i against seed i."""

    variant: str
    counterpart: str
    factor: str

    @property
    def label(self) -> str:
        """The row label of the pair table: the factor, then which difference."""
        return f"{self.factor}: {self.variant} − {self.counterpart}"

    def to_dict(self) -> dict[str, str]:
        return {"variant": self.variant, "counterpart": self.counterpart, "factor": self.factor}


def variant_pairs(variants: Mapping[str, Variant]) -> tuple[list[Pair], list[Pair]]:
    """(pairs, skipped) of the run's ``variants`` (as :func:`load_variants` returns them), in their order:
    every declared ``compare_to`` whose counterpart is trained too, and those whose counterpart is not."""
    pairs, skipped = [], []
    for name, row in variants.items():
        for other, factor in row.compare_to:
            (pairs if other in variants else skipped).append(Pair(name, other, factor))
    return pairs, skipped


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
        drawn = v.mask is not None and (KINDS[v.mask].random or v.leaf_policy == "random")
        seeded = drawn or (own_tree and "leaves" in v.reads)
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
