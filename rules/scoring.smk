rule score_reference:
    input:
        model=f"{R}/models/reference/hf",
        shard=shard_files("web", "{shard}"),
    output:
        loss=f"{R}/scores/reference/{{shard}}.loss.npy",
        sample=f"{R}/embeddings/shards/{{shard}}.npz",
    log:
        f"{LOGS}/score_reference/{{shard}}.log",
    benchmark:
        f"{BENCH}/score_reference/{{shard}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpus=gpu(1),
    params:
        prefix=lambda wc: f"{R}/shards/web/{wc.shard}",
        batch_size=config["scoring"].get("batch_size", 32),
        layer=config["scoring"].get("layer", -1),
        sample_tokens=config["scoring"].get("sample_tokens_per_shard", 3000),
        seed=lambda wc: config["seed"] * 100003 + int(wc.shard),
    script:
        "../scripts/score.py"


rule score_base:
    input:
        model=f"{R}/models/base/hf",
        shard=shard_files("web", "{shard}"),
    output:
        loss=f"{R}/scores/base/{{shard}}.loss.npy",
    log:
        f"{LOGS}/score_base/{{shard}}.log",
    benchmark:
        f"{BENCH}/score_base/{{shard}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpus=gpu(1),
    params:
        prefix=lambda wc: f"{R}/shards/web/{wc.shard}",
        batch_size=config["scoring"].get("batch_size", 32),
    script:
        "../scripts/score.py"


rule fit_projection:
    input:
        expand(f"{R}/embeddings/shards/{{shard}}.npz", shard=WEB_SHARDS),
    output:
        sample=f"{R}/embeddings/sample.npy",
        index=f"{R}/embeddings/sample_index.npz",
        projection=f"{R}/embeddings/projection.npz",
    log:
        f"{LOGS}/fit_projection.log",
    benchmark:
        f"{BENCH}/fit_projection.tsv"
    conda:
        "../envs/clustering.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        projection=config["scoring"].get("projection", {}),
        normalize=config["scoring"].get("normalize", "l2"),
        seed=config["seed"],
    script:
        "../scripts/fit_projection.py"
