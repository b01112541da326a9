# Static token masks: balanced sampling of the cluster tree (cluster, cluster_excess), the random
# control, and the inspection pages that show what the clusters hold and what each mask keeps.


rule select_cluster_tokens:
    input:
        unpack(selection_inputs),
    output:
        masks=expand(f"{R}/masks/{{{{variant}}}}/{{shard}}.npy", shard=WEB_SHARDS),
        summary=f"{R}/clusters/summary_{{variant}}.json",
    log:
        f"{LOGS}/select_tokens/{{variant}}.log",
    benchmark:
        f"{BENCH}/select_tokens/{{variant}}.tsv"
    wildcard_constraints:
        variant="cluster|cluster_excess",
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        ratio=config["selection"].get("ratio", 0.6),
        policy=leaf_policy,
        seed=config["seed"],
        levels=[f"{R}/clusters/level_{level}" for level in LEVELS],
    script:
        "../scripts/select_tokens.py"


rule random_mask:
    input:
        shard=shard_files("web", "{shard}"),
    output:
        f"{R}/masks/random/{{shard}}.npy",
    log:
        f"{LOGS}/random_mask/{{shard}}.log",
    benchmark:
        f"{BENCH}/random_mask/{{shard}}.tsv"
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        prefix=lambda wc: f"{R}/shards/web/{wc.shard}",
        ratio=config["selection"].get("ratio", 0.6),
        seed=config["seed"],
    script:
        "../scripts/random_mask.py"


rule inspect_clusters:
    input:
        unpack(inspect_inputs),
    output:
        figure=report(
            f"{R}/clusters/inspect/cluster_sizes.png",
            caption="../report/cluster_sizes.rst",
            category="Clustering",
        ),
        html=report(
            f"{R}/clusters/inspect/examples.html",
            caption="../report/cluster_examples.rst",
            category="Clustering",
        ),
        markdown=f"{R}/clusters/inspect/examples.md",
    log:
        f"{LOGS}/inspect_clusters.log",
    benchmark:
        f"{BENCH}/inspect_clusters.tsv"
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        variants=[v for v in VARIANTS if v in ("cluster", "cluster_excess", "random")],
        levels=[f"{R}/clusters/level_{level}" for level in LEVELS],
        ratio=config["selection"].get("ratio", 0.6),
        inspect=config["selection"].get("inspect", {}),
        seed=config["seed"],
        run=RUN,
    script:
        "../scripts/inspect_clusters.py"
