import json
from pathlib import Path

RUN = config["run"]
R = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCH = f"benchmarks/{RUN}"

SYN = config["data"].get("synthetic", {})
WEB_SHARDS = [f"{i:05d}" for i in range(SYN.get("web_shards", 4))]
PRETRAIN_SHARDS = [f"{i:05d}" for i in range(SYN.get("pretrain_shards", 2))]
HQ_SHARDS = ["00000"]
SHARDS = {"web": WEB_SHARDS, "hq": HQ_SHARDS, "pretrain": PRETRAIN_SHARDS}
SHARD_SUFFIXES = [".bin", ".idx", ".labels.npy", ".json"]

VARIANTS = config["variants"]
MODELS = ["base", "reference", *VARIANTS]
CLUSTER_VARIANTS = [v for v in VARIANTS if v in ("cluster", "cluster_excess")]
LEVELS = list(range(1, len(config["clustering"]["levels"]) + 1))
BENCHMARKS = config["evaluation"]["benchmarks"]
LEVEL_FILES = ["centroids.npy", "parents.npy", "sizes.npy", "summary.json"]


wildcard_constraints:
    shard=r"\d{5}",
    split="web|hq|pretrain",
    level=r"\d+",
    model="|".join(MODELS),
    variant="|".join(VARIANTS) if VARIANTS else "ct",
    benchmark="|".join(BENCHMARKS),


def shard_files(split, shard):
    """The files of one tokenized shard."""
    return [f"{R}/shards/{split}/{shard}{s}" for s in SHARD_SUFFIXES]


def all_shard_files(split):
    return [f for shard in SHARDS[split] for f in shard_files(split, shard)]


def shard_prefixes(split):
    return [f"{R}/shards/{split}/{shard}" for shard in SHARDS[split]]


def level_files(level):
    return [f"{R}/clusters/level_{level}/{name}" for name in LEVEL_FILES]


def level_input(wildcards):
    """Level 1 clusters the token sample; level l the centroids of level l-1 (Vo et al.)."""
    level = int(wildcards.level)
    if level == 1:
        return {"points": f"{R}/embeddings/sample.npy"}
    return {
        "points": f"{R}/clusters/level_{level - 1}/centroids.npy",
        "child_sizes": f"{R}/clusters/level_{level - 1}/sizes.npy",
    }


def level_params(wildcards):
    return config["clustering"]["levels"][int(wildcards.level) - 1]


def base_model_rule_input(wildcards):
    """Inputs of the base model: the generic corpus (pretrain here) or a local HF directory."""
    if config["base"]["source"] == "pretrain":
        return all_shard_files("pretrain")
    return [config["base"]["hf_dir"]]


def train_config(section):
    """Training config of a section, seeded from the master seed unless it sets its own."""
    return {"seed": config["seed"], **config[section]["training"]}


def cpt_training(wildcards):
    """Training config of a CPT variant: the shared CPT settings plus its token selection."""
    selection = {"ct": "all", "rho1": "slm"}.get(wildcards.variant, "mask")
    return {
        **train_config("cpt"),
        "selection": selection,
        "slm_ratio": config["cpt"].get("slm_ratio", 0.6),
    }


def cpt_inputs(wildcards):
    """A variant trains on the web shards, from the base model, with its mask or reference losses."""
    inputs = {"shards": all_shard_files("web"), "init": f"{R}/models/base/mcore"}
    if wildcards.variant == "rho1":
        inputs["ref_loss"] = expand(
            f"{R}/scores/reference/{{shard}}.loss.npy", shard=WEB_SHARDS
        )
    elif wildcards.variant != "ct":
        inputs["masks"] = expand(
            f"{R}/masks/{wildcards.variant}/{{shard}}.npy", shard=WEB_SHARDS
        )
    return inputs


def selection_inputs(wildcards):
    """Leaf ids, the cluster tree and the per-leaf ranking scores of a cluster variant."""
    inputs = {
        "shards": all_shard_files("web"),
        "leaves": expand(f"{R}/clusters/assign/{{shard}}.leaf.npy", shard=WEB_SHARDS),
        "levels": [f for level in LEVELS for f in level_files(level)],
    }
    if wildcards.variant == "cluster_excess":
        inputs["base_loss"] = expand(
            f"{R}/scores/base/{{shard}}.loss.npy", shard=WEB_SHARDS
        )
        inputs["ref_loss"] = expand(
            f"{R}/scores/reference/{{shard}}.loss.npy", shard=WEB_SHARDS
        )
    elif config["selection"].get("leaf_policy", "random") == "closest":
        inputs["dist"] = expand(
            f"{R}/clusters/assign/{{shard}}.dist.npy", shard=WEB_SHARDS
        )
    return inputs


def leaf_policy(wildcards):
    if wildcards.variant == "cluster_excess":
        return "excess_loss"
    return config["selection"].get("leaf_policy", "random")


def harness_dir():
    """Where the benchmark data and prompts live, in the harness' own layout."""
    source = config["evaluation"]["source"]
    if source == "tiny":
        return f"{R}/benchmarks/harness"
    if source == "fetch":
        return f"{R}/benchmarks/fetched"
    return config["evaluation"]["harness_dir"]


def eval_files():
    """[model, benchmark, path] of every evaluation summary."""
    return [[m, b, f"{R}/eval/{m}/{b}.json"] for m in MODELS for b in BENCHMARKS]


def label_summaries():
    return {v: f"{R}/models/{v}/summary.json" for v in VARIANTS}


def gpu(n=1):
    """GPUs to request from SLURM for a rule (0 on the tiny CPU default)."""
    return n if config.get("resources", {}).get("gpu_rules", False) else 0


def final_targets():
    targets = [
        f"{R}/tables/results.md",
        f"{R}/tables/results.csv",
        f"{R}/tables/labels.md",
    ]
    targets += [f"{R}/clusters/summary_{v}.json" for v in CLUSTER_VARIANTS]
    targets += REPORT_TARGETS  # figures and statistics, defined in rules/report.smk
    if config["report"].get("update_readme", True):
        targets.append(f"{R}/tables/readme.done")
    return targets
