import json
import os
from pathlib import Path

import re

from rhocluster.clustering.trees import tree_seeds, trees_note
from rhocluster.workflow.variants import (
    cpt_models,
    cpt_seeds,
    load_variants,
    variant_pairs,
)
from rhocluster.workflow.sizes import job_size

# envs/*.yaml install this package with `--editable ${RHOCLUSTER_ROOT}` (pip expands the variable in
# the requirements file conda writes): Snakemake copies each env file under .snakemake/conda before
# creating the environment, so a relative path there would not point at the workflow directory.
os.environ.setdefault("RHOCLUSTER_ROOT", workflow.basedir)

RUN = config["run"]
R = f"results/{RUN}"
LOGS = f"logs/{RUN}"
TIMINGS = f"timings/{RUN}"  # Snakemake `benchmark:` files (a job's wall time, memory); "benchmark" means a test set

SYN = config["data"].get("synthetic", {})
if config["data"]["source"] == "hf":
    # Hub data (rules/fetch.smk): the web corpus and the HQ mixture in configured shard counts; no
    # generic pretraining corpus (the base model comes from the hub too).
    # The corpus is cut into num_shards row ranges (plus the held-out ones); a pilot trains on the first
    # use_shards of them, the same files as the full run's first shards.
    N_WEB_RANGES = config["data"]["web"]["num_shards"]
    WEB_SHARDS = [
        f"{i:05d}" for i in range(config["data"]["web"]["use_shards"] or N_WEB_RANGES)
    ]
    HQ_SHARDS = [f"{i:05d}" for i in range(config["data"]["hq"]["num_shards"])]
    HQ_DATASETS = [d["name"] for d in config["data"]["hq"]["datasets"]]
    PRETRAIN_SHARDS = []
    # Set aside before training, never trained on: the last row ranges of the web files and the first
    # documents of the shuffled HQ mixture (one shard).
    HELDOUT_WEB = [f"{i:05d}" for i in range(config["data"]["web"]["heldout_shards"])]
    HELDOUT_HQ = ["00000"] if config["data"]["hq"]["heldout_docs"] else []
else:
    WEB_SHARDS = [f"{i:05d}" for i in range(SYN["web_shards"])]
    PRETRAIN_SHARDS = [f"{i:05d}" for i in range(SYN["pretrain_shards"])]
    HQ_SHARDS = ["00000"]
    HQ_DATASETS = []
    # Generated with their own seeds, never trained on.
    HELDOUT_WEB = ["00000"] if SYN["heldout_web_docs"] else []
    HELDOUT_HQ = ["00000"] if SYN["heldout_hq_docs"] else []
HUB = config["hub"]
SHARDS = {
    "web": WEB_SHARDS,
    "hq": HQ_SHARDS,
    "pretrain": PRETRAIN_SHARDS,
    "heldout_web": HELDOUT_WEB,
    "heldout_hq": HELDOUT_HQ,
}
# Held-out shards every model is scored on (rules/heldout.smk), as "split/shard".
HELDOUT = [
    f"{split}/{shard}"
    for split in ("heldout_web", "heldout_hq")
    for shard in SHARDS[split]
]
SHARD_SUFFIXES = [".bin", ".idx", ".labels.npy", ".json"]

# The variant table (rhocluster/workflow/variants.yaml + variant_table), checked before the DAG is built.
VARIANT_ROWS = load_variants(config)
VARIANTS = list(VARIANT_ROWS)
# Every variant once per training seed (cpt.seeds): "cluster", then "cluster.s1", "cluster.s2", ...
CPT = cpt_models(config)
MODELS = ["base", "reference", *CPT]
# Models the benchmarks evaluate (evaluation.seeds: every seed, or the first seed's only).
EVAL_MODELS = [
    m
    for m in MODELS
    if config["evaluation"]["seeds"] == "all" or m not in CPT or CPT[m].replicate == 0
]
BUDGET = config["selection"]["budget"]


def variants_where(**row):
    """Variants whose row has every given value, e.g. ``variants_where(mask="balanced")``."""
    return [
        name
        for name, v in VARIANT_ROWS.items()
        if all(getattr(v, key) == value for key, value in row.items())
    ]


def one_of(names):
    """Wildcard regex matching exactly ``names`` (nothing when empty)."""
    return "|".join(map(re.escape, names)) if names else "(?!)"


def mask_keys(**row):
    """Mask directories (masks/{key}/) of the variants whose row has the given values: one per seed
    where the mask depends on the seed, one per variant where it does not (CptModel.mask_key).
    """
    keep = set(variants_where(**row))
    return list(
        dict.fromkeys(m.mask_key for m in CPT.values() if m.variant.name in keep)
    )


def mask_dirs(**row):
    """{variant: its first seed's mask directory (masks/{variant}/, one select_tokens job's output)} of
    the variants whose row has the given values, e.g. ``mask_dirs(tokens="mask")``: every static mask.
    Rules depend on the directories; the scripts read the summaries inside (``summary_files``).
    """
    return {v: f"{R}/masks/{v}" for v in variants_where(**row)}


def summary_files(dirs):
    """{variant: the summary.json inside its mask directory} of ``mask_dirs(...)``."""
    return {v: f"{d}/summary.json" for v, d in dirs.items()}


TREE_VARIANTS = [v for v, row in VARIANT_ROWS.items() if row.uses_tree]
# The cluster trees (rhocluster.clustering.trees), each with its seed: one per training seed ("s0",
# "s1", ...: sample draw, projection and k-means seeds from cpt.seeds[i]) unless clustering.trees is
# shared (one tree "s0"). A CPT model's rows use CPT[model].tree; the inspection pages show tree s0.
TREES = tree_seeds(config, cpt_seeds(config))
LEVELS = list(range(1, len(config["clustering"]["levels"]) + 1))
BENCHMARKS = config["evaluation"]["benchmarks"]
LEVEL_FILES = ["centroids.npy", "parents.npy", "sizes.npy", "summary.json"]


wildcard_constraints:
    shard=r"\d{5}",
    tree=r"s\d+",
    split="web|hq|pretrain|heldout_web|heldout_hq",
    level=r"\d+",
    model=one_of(MODELS),
    mask=one_of(mask_keys(tokens="mask")),
    benchmark="|".join(BENCHMARKS),


def shard_files(split, shard):
    """The files of one tokenized shard."""
    return [f"{R}/shards/{split}/{shard}{s}" for s in SHARD_SUFFIXES]


def all_shard_files(split):
    """One file per tokenized shard of ``split``, its ``.bin``, for rules that read every shard: the
    tokenize job writes all of a shard's files together (a missing one reruns it), so depending on one
    depends on all, and the DAG of a 1000-shard config stays ~20% quicker to build."""
    return [f"{R}/shards/{split}/{shard}.bin" for shard in SHARDS[split]]


def shard_prefixes(split):
    """Every shard's path prefix (``.bin``/``.idx``/... stripped) of ``split``: what the package reads."""
    return [f"{R}/shards/{split}/{shard}" for shard in SHARDS[split]]


def shard_prefix(wildcards):
    """The path prefix of the job's shard (its ``{split}`` wildcard, else web)."""
    return f"{R}/shards/{getattr(wildcards, 'split', 'web')}/{wildcards.shard}"


def level_dir(tree, level):
    return f"{R}/clusters/{tree}/level_{level}"


def level_dirs(tree):
    """The level directories of one cluster tree, leaves first."""
    return [level_dir(tree, level) for level in LEVELS]


def level_files(tree, level):
    return [f"{level_dir(tree, level)}/{name}" for name in LEVEL_FILES]


def level_input(wildcards):
    """Level 1 clusters the tree's token sample; level l the centroids of level l-1 (Vo et al.)."""
    level, tree = int(wildcards.level), wildcards.tree
    if level == 1:
        return {"points": f"{R}/embeddings/{tree}/sample.npy"}
    return {
        "points": f"{level_dir(tree, level - 1)}/centroids.npy",
        "child_sizes": f"{level_dir(tree, level - 1)}/sizes.npy",
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


def base_training():
    """Training config of the base model; empty when it is imported (``base.source: hf``)."""
    if config["base"]["source"] != "pretrain":
        return {}
    return train_config("base")


def cpt_training(wildcards):
    """Training config of a CPT model: the shared CPT settings, its seed, and its row's token selection
    (the budget only where the trainer ranks, so a budget change reruns no ct or static-mask training).
    """
    model = CPT[wildcards.model]
    row = model.variant
    training = {**train_config("cpt"), "seed": model.seed, "tokens": row.tokens}
    if row.tokens == "slm":
        training["budget"] = BUDGET
        training["group_level"] = row.group_level or 0
    return training


def assign_files(tree, kind):
    """Every web shard's per-token file of one tree written by assign: ``leaf`` ids or ``dist``ances."""
    return expand(f"{R}/clusters/{tree}/assign/{{shard}}.{kind}.npy", shard=WEB_SHARDS)


def tree_files(tree):
    return [f for level in LEVELS for f in level_files(tree, level)]


def cpt_inputs(wildcards):
    """A variant trains on the web shards, from the base model, with its mask, or with the reference
    losses (and, ranking inside cluster groups, every token's leaf and the cluster tree).
    """
    model = CPT[wildcards.model]
    row = model.variant
    inputs = {"shards": all_shard_files("web"), "init": f"{R}/models/base/mcore"}
    if row.tokens == "slm":
        # always score_reference's loss, also under fused_pass: rho1 and cluster_slm then differ in
        # the grouping only
        inputs["ref_loss"] = expand(
            f"{R}/scores/reference/{{shard}}.loss.npy", shard=WEB_SHARDS
        )
        if row.group_level:
            inputs["leaves"] = assign_files(model.tree, "leaf")
            inputs["levels"] = tree_files(model.tree)
    elif row.tokens == "mask":
        inputs["masks"] = f"{R}/masks/{model.mask_key}"
    return inputs


def excess_inputs(fused):
    """Base and reference losses of every web shard, the fixed excess loss's two terms. ``fused``: the
    reference loss from assign's pass (clustering-dependent: only for variants that use the tree).
    """
    ref = (
        "clusters/assign/{shard}.refloss" if fused else "scores/reference/{shard}.loss"
    )
    return {
        "base_loss": expand(f"{R}/scores/base/{{shard}}.loss.npy", shard=WEB_SHARDS),
        "ref_loss": expand(f"{R}/{ref}.npy", shard=WEB_SHARDS),
    }


def mask_inputs(wildcards):
    """Shards and what the mask's kind reads (rhocluster.selection.kinds): leaf ids, distances and
    levels of its seed's cluster tree, the fixed excess loss's two terms."""
    model = mask_model(wildcards)
    row, tree = model.variant, model.tree
    inputs = {"shards": all_shard_files("web")}
    if "leaves" in row.reads:
        inputs["leaves"] = assign_files(tree, "leaf")
    if "levels" in row.reads:
        inputs["levels"] = tree_files(tree)
    if "dist" in row.reads:
        inputs["dist"] = assign_files(tree, "dist")
    if "excess" in row.reads:
        # scoring.fused_pass: the reference loss from assign's pass, a clustering-dependent job, so only
        # masks using the tree may read it; the others read score_reference's (rules/scoring.smk)
        inputs.update(excess_inputs(config["scoring"]["fused_pass"] and row.uses_tree))
    return inputs


def mask_settings(wildcards):
    """The mask function's settings: the budget, the seed it draws with, the row's own keys."""
    model = mask_model(wildcards)
    row = model.variant
    settings = {"budget": BUDGET, "seed": model.seed}
    if row.leaf_policy:
        settings["leaf_policy"] = row.leaf_policy
    if row.shrinkage is not None:
        settings["shrinkage"] = row.shrinkage
    return settings


def mask_files(key):
    """Every web shard's mask in mask directory ``key`` (``masks/{key}/``, one job's directory output:
    one path for the DAG instead of one per shard, which kept the real config's dry run quadratic).
    """
    return [f"{R}/masks/{key}/{shard}.npy" for shard in WEB_SHARDS]


def mask_model(wildcards):
    """The CPT model a mask directory (masks/{mask}/) belongs to (the first seed's, when shared)."""
    return CPT[wildcards.mask]


def inspect_inputs(wildcards):
    """Shards, leaf ids, the first seed's cluster tree, its static masks and the tokenizer (inspect_clusters)."""
    return {
        "shards": all_shard_files("web"),
        "leaves": assign_files("s0", "leaf"),
        "levels": tree_files("s0"),
        "masks": list(mask_dirs(tokens="mask").values()),
        "tokenizer": f"{R}/tokenizer",
    }


def harness_dir():
    """Where the benchmark data and prompts live, in the harness' own layout."""
    source = config["evaluation"]["source"]
    if source == "tiny":
        return f"{R}/benchmarks/harness"
    if source == "fetch":
        return f"{R}/benchmarks/fetched"
    return config["evaluation"]["harness_dir"]


def label_summaries():
    return {m: f"{R}/models/{m}/summary.json" for m in CPT}


def job_threads(rule, default):
    """``threads:`` of ``rule``: ``default`` unless the config's resources.<rule>.threads is set
    (rhocluster.workflow.sizes.job_size). Capped at --cores locally; SLURM's cpus_per_task unless that is set.
    Job sizes belong to the config (they scale with model and data); profiles/slurm holds the site's
    settings only."""
    return job_size(config["resources"], rule, {"threads": default})["threads"]


def job_resources(rule, **defaults):
    """``resources:`` of ``rule``: ``defaults`` (the rule's small CPU sizes) overridden key by key by the
    config's resources.<rule>, threads left out (rhocluster.workflow.sizes.job_size)."""
    size = job_size(config["resources"], rule, defaults)
    size.pop("threads", None)
    return size


def check_job_sizes():
    """Stop at parse time when the config's ``resources`` names a rule this workflow does not have."""
    unknown = sorted(set(config["resources"]) - {r.name for r in workflow.rules})
    if unknown:
        raise ValueError(
            f"config resources: no rule named {', '.join(unknown)} (keys are rule names, e.g. train_cpt)"
        )


def final_targets():
    targets = [
        f"{R}/tables/results.md",
        f"{R}/tables/results.csv",
        f"{R}/tables/labels.md",
    ]
    targets += list(mask_dirs(tokens="mask").values())
    targets += [f"{R}/clusters/inspect/examples.html"] if TREE_VARIANTS else []
    targets += REPORT_TARGETS  # figures and statistics, defined below
    if config["report"]["update_readme"]:
        targets.append(f"{R}/tables/readme.done")
    return targets


def hub_fetch_name(job):
    """Name of the hub source a pending fetch job downloads (keys of rhocluster.hub.download.config_sources)."""
    if job.rule.name == "fetch_hq_dataset":
        return f"hq/{job.wildcards.dataset}"
    return {"fetch_owm": "owm", "fetch_base_model": "base"}.get(job.rule.name)


def check_before_start():
    """Stop before any job starts or is submitted when the run cannot succeed: hub sources
    unpinned or unreachable, SLURM account/partition unset, GPU jobs outside the GPU partition (on
    SLURM) or GPUs missing on this machine, device settings against the config's job sizes,
    model-parallel sizes that do not divide a training job's processes.
    """
    from os.path import relpath

    from snakemake.exceptions import WorkflowError
    from rhocluster.hub.download import config_sources, preflight
    from rhocluster.workflow.preflight import (
        GPU_PARTITION_ENV,
        PendingJob,
        check_devices,
        check_local_gpus,
        check_model_parallel,
        check_slurm,
        gpu_count,
    )

    jobs = list(workflow.dag.needrun_jobs())
    sources = config_sources(config)
    fetching = sorted({hub_fetch_name(job) for job in jobs} & set(sources))
    configfiles = [relpath(f) for f in workflow.overwrite_configfiles]
    problems = preflight(
        [sources[name] for name in fetching],
        HUB["cache_dir"],
        allow_unpinned=HUB["allow_unpinned"],
        config_path=" ".join(configfiles) or "config/config.yaml",
    )
    if any(job.rule.name == "fetch_benchmarks" for job in jobs):
        problems += benchmark_fetch_problems()
    pending = [
        PendingJob(job.rule.name, job.is_local, dict(job.resources.items()))
        for job in jobs
    ]
    training = {
        "pretrain_base": base_training(),
        "train_reference": train_config("reference"),
        "train_cpt": train_config("cpt"),
    }
    problems += check_devices(pending, config)
    problems += check_model_parallel(pending, training)
    if getattr(workflow.executor_plugin, "name", None) == "slurm":
        problems += check_slurm(pending, os.environ.get(GPU_PARTITION_ENV))
    elif any(gpu_count(job.resources) for job in pending):
        import torch

        problems += check_local_gpus(pending, torch.cuda.device_count())
    if problems:
        raise WorkflowError(
            "Stopped before starting any job:\n  - " + "\n  - ".join(problems)
        )


def benchmark_fetch_problems():
    """What would stop fetch_benchmarks: benchmark files that no mirror (RHO_BENCHMARK_MIRROR), pinned URL
    or download cache can supply (rhocluster.evaluation.fetch.preflight)."""
    from rhocluster.evaluation.fetch import load_manifest, mirrors_from_env, preflight

    fetch = config["evaluation"]["fetch"]
    try:
        return preflight(
            load_manifest(fetch["manifest"]),
            BENCHMARKS,
            fetch["cache_dir"],
            mirrors_from_env(),
            timeout_s=min(10.0, fetch["timeout_s"]),
        )
    except (OSError, ValueError) as err:
        return [f"evaluation.fetch: {err}"]


def prepare_hq_mem_mb():
    """Memory of prepare_hq, which holds the whole rendered mixture: ~120 bytes per expected token (64 GB
    for the real ~0.5B-token mixture), at least 2 GB; 64 GB where a dataset gives no approx_tokens.
    """
    datasets = config["data"]["hq"]["datasets"]
    if any("approx_tokens" not in d for d in datasets):
        return 64000
    return max(2000, int(sum(d["approx_tokens"] for d in datasets) * 120 / 1e6))


def hq_dataset(name):
    """Config entry of one dataset of the HQ mixture (data.hq.datasets)."""
    return next(d for d in config["data"]["hq"]["datasets"] if d["name"] == name)


onstart:
    check_before_start()


# --- paths the report rules read and write --------------------------------------------------------
FIGURES = f"{R}/figures"
# [model, benchmark, summary, predictions] of every evaluation (rule evaluate's outputs)
REPORT_EVALS = [
    [m, b, f"{R}/eval/{m}/{b}.json", f"{R}/eval/{m}/{b}.predictions.jsonl"]
    for m in EVAL_MODELS
    for b in BENCHMARKS
]
REPORT_EVAL_FILES = [path for row in REPORT_EVALS for path in row[2:]]
TRAIN_LOGS = {v: f"{R}/models/{v}/train_log.jsonl" for v in VARIANTS}  # first seeds
# Rows of the tables: base, reference, and each variant with its models, one per seed.
REPLICATES = {
    "base": ["base"],
    "reference": ["reference"],
    **{v: [m for m, c in CPT.items() if c.variant.name == v] for v in VARIANTS},
}
ROWS = list(REPLICATES)
EVAL_REPLICATES = {
    row: [m for m in ms if m in EVAL_MODELS] for row, ms in REPLICATES.items()
}
CPT_REPLICATES = {v: REPLICATES[v] for v in VARIANTS}
# The held-out pair table's rows (compare_to in the variant table); skipped: counterpart not trained here.
PAIRS, SKIPPED_PAIRS = variant_pairs(VARIANT_ROWS)
HELDOUT_LOSSES = {
    m: {
        split: [f"{R}/heldout/{m}/{split}/{shard}.loss.npy" for shard in SHARDS[split]]
        for split in ("heldout_web", "heldout_hq")
        if SHARDS[split]
    }
    for m in MODELS
}
# everything the report rules make beyond tables/results.*: intervals, paired tests, figures
REPORT_TARGETS = [
    f"{R}/tables/ci.csv",
    f"{R}/tables/significance.md",
    f"{FIGURES}/accuracy.png",
    f"{FIGURES}/loss.png",
    f"{FIGURES}/kept_fraction.png",
] + ([f"{FIGURES}/clusters.png"] if mask_dirs(mask="balanced") else [])
REPORT_TARGETS += [f"{R}/tables/heldout.md"] if HELDOUT else []
# assign's reference-loss output, only under scoring.fused_pass (see rules/scoring.smk)
ASSIGN_REF_LOSS = (
    {"ref_loss": f"{R}/clusters/assign/{{shard}}.refloss.npy"}
    if config["scoring"]["fused_pass"]
    else {}
)
