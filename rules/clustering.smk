# Hierarchical k-means (Vo et al.), one job per tree and level, and the assignment of every token to a
# leaf of every tree (one pass per shard). Trees: one per training seed (TREES, rules/common.smk).


rule cluster_level:
    input:
        unpack(level_input),
    output:
        level_files("{tree}", "{level}"),
    log:
        f"{LOGS}/cluster_level/{{tree}}/{{level}}.log",
    benchmark:
        f"{TIMINGS}/cluster_level/{{tree}}/{{level}}.tsv"
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: job_threads("cluster_level", 1)
    resources:
        **job_resources("cluster_level", mem_mb=16000, runtime=240, gpus=0),
    params:
        level=level_params,
        spherical=config["clustering"]["spherical"],
        seed=lambda wc: TREES[wc.tree] + int(wc.level),
        out_dir=lambda wc: level_dir(wc.tree, wc.level),
    script:
        "../scripts/cluster_level.py"


rule assign:
    input:
        model=f"{R}/models/reference/hf",
        shard=shard_files("web", "{shard}"),
        projections=expand(rules.fit_projection.output.projection, tree=TREES),
        centroids=[f"{level_dir(tree, 1)}/centroids.npy" for tree in TREES],
    output:
        **ASSIGN_REF_LOSS,
        leaves=[f"{R}/clusters/{tree}/assign/{{shard}}.leaf.npy" for tree in TREES],
        dists=[f"{R}/clusters/{tree}/assign/{{shard}}.dist.npy" for tree in TREES],
    log:
        f"{LOGS}/assign/{{shard}}.log",
    benchmark:
        f"{TIMINGS}/assign/{{shard}}.tsv"
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: job_threads("assign", 1)
    resources:
        **job_resources("assign", mem_mb=8000, runtime=240, gpus=0),
    params:
        prefix=shard_prefix,
        batch_size=config["scoring"]["batch_size"],
        layer=config["scoring"]["layer"],
        position=config["scoring"]["position"],
        spherical=config["clustering"]["spherical"],
        trees=list(TREES),
    script:
        "../scripts/assign.py"
