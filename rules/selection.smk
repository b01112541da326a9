# Static token masks, one rule per family of `mask:` kinds of the variant table: balanced sampling of
# the cluster tree, the corpus-wide top fixed excess loss, leaves with fixed excess loss (cluster_filter,
# excess_smoothed), and uniform random; then the inspection pages that show what the clusters hold and
# what each mask keeps.


rule select_cluster_tokens:
    input:
        unpack(selection_inputs),
    output:
        masks=expand(f"{R}/masks/{{{{variant}}}}/{{shard}}.npy", shard=WEB_SHARDS),
        summary=f"{R}/masks/{{variant}}/summary.json",
    log:
        f"{LOGS}/select_cluster_tokens/{{variant}}.log",
    benchmark:
        f"{BENCH}/select_cluster_tokens/{{variant}}.tsv"
    wildcard_constraints:
        variant=one_of(mask_keys(mask="balanced")),
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        prefixes=shard_prefixes("web"),
        budget=BUDGET,
        policy=leaf_policy,
        seed=mask_seed,
        levels=lambda wc: level_dirs(mask_model(wc).tree),
    script:
        "../scripts/select_cluster_tokens.py"


rule select_excess_tokens:
    input:
        unpack(top_excess_inputs),
    output:
        masks=expand(f"{R}/masks/{{{{variant}}}}/{{shard}}.npy", shard=WEB_SHARDS),
        summary=f"{R}/masks/{{variant}}/summary.json",
    log:
        f"{LOGS}/select_excess_tokens/{{variant}}.log",
    benchmark:
        f"{BENCH}/select_excess_tokens/{{variant}}.tsv"
    wildcard_constraints:
        variant=one_of(mask_keys(mask="top_excess")),
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        prefixes=shard_prefixes("web"),
        budget=BUDGET,
    script:
        "../scripts/select_excess_tokens.py"


rule select_leaf_excess_tokens:
    input:
        unpack(leaf_excess_inputs),
    output:
        masks=expand(f"{R}/masks/{{{{variant}}}}/{{shard}}.npy", shard=WEB_SHARDS),
        summary=f"{R}/masks/{{variant}}/summary.json",
    log:
        f"{LOGS}/select_leaf_excess_tokens/{{variant}}.log",
    benchmark:
        f"{BENCH}/select_leaf_excess_tokens/{{variant}}.tsv"
    wildcard_constraints:
        variant=one_of(
            mask_keys(mask="cluster_filter") + mask_keys(mask="excess_smoothed")
        ),
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        prefixes=shard_prefixes("web"),
        budget=BUDGET,
        kind=lambda wc: mask_model(wc).variant.mask,
        shrinkage=lambda wc: mask_model(wc).variant.shrinkage,
    script:
        "../scripts/select_leaf_excess_tokens.py"


rule random_mask:
    input:
        shard=shard_files("web", "{shard}"),
    output:
        f"{R}/masks/{{variant}}/{{shard}}.npy",
    log:
        f"{LOGS}/random_mask/{{variant}}/{{shard}}.log",
    benchmark:
        f"{BENCH}/random_mask/{{variant}}/{{shard}}.tsv"
    wildcard_constraints:
        variant=one_of(mask_keys(mask="random")),
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        prefix=shard_prefix,
        budget=BUDGET,
        seed=mask_seed,
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
        prefixes=shard_prefixes("web"),
        variants=variants_where(tokens="mask"),
        levels=level_dirs("s0"),
        ratio=BUDGET,
        inspect=config["selection"]["inspect"],
        seed=config["seed"],
        run=RUN,
    script:
        "../scripts/inspect_clusters.py"
