"""What the planner reads besides the DAG: the validated config, token counts per split (measured
on the tokenized shards where they exist, else the config's estimates) and the GPUs per job of its job sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence


def load_config(paths: Sequence[Path | str], schema: Path | str = "config/schema.yaml") -> dict:
    """Merge config files (later ones win, as Snakemake merges --configfile) and validate them against
    the workflow's schema, filling its defaults."""
    import yaml
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in paths:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    validate(config, str(schema))
    return config


def shard_ids(n: int) -> list[str]:
    """The ids of ``n`` shards: 00000, 00001, ..."""
    return [f"{i:05d}" for i in range(n)]


def shard_lists(config: dict) -> dict[str, list[str]]:
    """Shard ids per split, as rules/common.smk defines them (where to measure tokens, and how the
    estimated tokens divide into per-shard jobs)."""
    data = config["data"]
    if data["source"] == "hf":
        web = data["web"]
        return {
            "web": shard_ids(web.get("use_shards") or web["num_shards"]),
            "hq": shard_ids(data["hq"]["num_shards"]),
            "pretrain": [],
            "heldout_web": shard_ids(web.get("heldout_shards", 0)),
            "heldout_hq": shard_ids(1 if data["hq"].get("heldout_docs", 0) else 0),
        }
    syn = data.get("synthetic", {})
    return {
        "web": shard_ids(syn.get("web_shards", 4)),
        "hq": ["00000"],
        "pretrain": shard_ids(syn.get("pretrain_shards", 2)),
        "heldout_web": shard_ids(1 if syn.get("heldout_web_docs", 0) else 0),
        "heldout_hq": shard_ids(1 if syn.get("heldout_hq_docs", 0) else 0),
    }


def _estimated_tokens(config: dict, split: str, n_shards: int) -> tuple[float, str]:
    data, plan = config["data"], config["plan"]
    if data["source"] == "hf":
        if split in ("web", "heldout_web"):
            if "approx_tokens" not in data["web"]:
                raise ValueError("data.web.approx_tokens is needed to plan before the web shards exist")
            # approx_tokens is the whole corpus, cut into num_shards ranges (plus the held-out ones)
            part = n_shards / (data["web"]["num_shards"] + data["web"].get("heldout_shards", 0))
            return float(data["web"]["approx_tokens"]) * part, "config estimate (data.web.approx_tokens)"
        if split == "heldout_hq":
            docs = data["hq"].get("heldout_docs", 0)
            return docs * plan["tokens_per_doc"], f"estimate ({docs} documents x plan.tokens_per_doc)"
        if split == "hq":
            sets = data["hq"]["datasets"]
            missing = [d["name"] for d in sets if "approx_tokens" not in d]
            if missing:
                raise ValueError(f"data.hq.datasets {missing} lack approx_tokens, needed to plan before tokenizing")
            return float(sum(d["approx_tokens"] for d in sets)), "config estimate (data.hq.datasets[*].approx_tokens)"
        return 0.0, "none"
    syn = data.get("synthetic", {})
    docs = {
        "web": n_shards * syn.get("web_docs_per_shard", 300),
        "hq": syn.get("hq_docs", 600),
        "pretrain": n_shards * syn.get("pretrain_docs_per_shard", 600),
        "heldout_web": syn.get("heldout_web_docs", 0),
        "heldout_hq": syn.get("heldout_hq_docs", 0),
    }[split]
    return docs * plan["tokens_per_doc"], f"estimate ({docs} generated documents x plan.tokens_per_doc)"


def token_counts(config: dict, results: Path | None) -> tuple[dict[str, float], dict[str, str]]:
    """Tokens stored per split (windows x (seq_len + 1)): measured from shard metadata where shards
    exist (extrapolated from a partial set), else estimated from the config."""
    tokens, sources = {}, {}
    for split, shards in shard_lists(config).items():
        if not shards:
            tokens[split], sources[split] = 0.0, "none"
            continue
        metas = []
        if results is not None:
            for shard in shards:
                meta = results / "shards" / split / f"{shard}.json"
                if meta.is_file():
                    metas.append(json.loads(meta.read_text()))
        if metas:
            measured = sum(m["n_windows"] * m["seq_len"] for m in metas)
            tokens[split] = measured * len(shards) / len(metas)
            sources[split] = f"measured on {len(metas)} of {len(shards)} shards"
        else:
            tokens[split], sources[split] = _estimated_tokens(config, split, len(shards))
    return tokens, sources


def config_gpus(config: Mapping[str, Any]) -> dict[str, int]:
    """GPUs per job of each rule from the config's job sizes (resources.<rule>: nodes x gpus per node)."""
    out = {}
    for rule, size in (config.get("resources") or {}).items():
        gpus = size.get("gpus") or 0
        if gpus:
            out[rule] = int(gpus) * int(size.get("nodes") or 1)
    return out
