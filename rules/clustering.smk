# Hierarchical k-means (Vo et al.), one job per level, and the assignment of every token to a leaf.


rule cluster_level:
    input:
        unpack(level_input),
    output:
        level_files("{level}"),
    log:
        f"{LOGS}/cluster_level/{{level}}.log",
    benchmark:
        f"{BENCH}/cluster_level/{{level}}.tsv"
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
        gpus=gpu(1),
    params:
        level=level_params,
        spherical=config["clustering"]["spherical"],
        seed=lambda wc: config["seed"] + int(wc.level),
        out_dir=lambda wc: f"{R}/clusters/level_{wc.level}",
    script:
        "../scripts/cluster_level.py"


rule assign:
    input:
        model=f"{R}/models/reference/hf",
        shard=shard_files("web", "{shard}"),
        projection=rules.fit_projection.output.projection,
        centroids=f"{R}/clusters/level_1/centroids.npy",
    output:
        **ASSIGN_REF_LOSS,
        leaf=f"{R}/clusters/assign/{{shard}}.leaf.npy",
        dist=f"{R}/clusters/assign/{{shard}}.dist.npy",
    log:
        f"{LOGS}/assign/{{shard}}.log",
    benchmark:
        f"{BENCH}/assign/{{shard}}.tsv"
    # the clustering variants' critical path runs before the many independent evaluations
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
        gpus=gpu(1),
    params:
        prefix=lambda wc: f"{R}/shards/web/{wc.shard}",
        batch_size=config["scoring"]["batch_size"],
        layer=config["scoring"]["layer"],
        position=config["scoring"]["position"],
        spherical=config["clustering"]["spherical"],
    script:
        "../scripts/assign.py"
