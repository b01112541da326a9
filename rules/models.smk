rule pretrain_base:
    input:
        base_model_rule_input,
    output:
        model=directory(f"{R}/models/base/mcore"),
        train_log=f"{R}/models/base/train_log.jsonl",
        summary=f"{R}/models/base/summary.json",
    log:
        f"{LOGS}/train/base.log",
    benchmark:
        f"{BENCH}/train/base.tsv"
    params:
        shards=shard_prefixes("pretrain"),
        shape=config["model"],
        training=train_config("base"),
        checkpoints=f"{R}/checkpoints/base",
        source=config["base"]["source"],
    threads: 2
    resources:
        mem_mb=8000,
        runtime=24 * 60,
        gpus=gpu(8),
    conda:
        "../envs/training.yaml"
    script:
        "../scripts/train_base.py"


rule train_reference:
    input:
        shards=all_shard_files("hq"),
        init=f"{R}/models/base/mcore",
    output:
        model=directory(f"{R}/models/reference/mcore"),
        train_log=f"{R}/models/reference/train_log.jsonl",
        summary=f"{R}/models/reference/summary.json",
    log:
        f"{LOGS}/train/reference.log",
    benchmark:
        f"{BENCH}/train/reference.tsv"
    params:
        shards=shard_prefixes("hq"),
        shape=config["model"],
        training=train_config("reference"),
        checkpoints=f"{R}/checkpoints/reference",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=24 * 60,
        gpus=gpu(8),
    conda:
        "../envs/training.yaml"
    script:
        "../scripts/train.py"


rule train_cpt:
    input:
        unpack(cpt_inputs),
    output:
        model=directory(f"{R}/models/{{variant}}/mcore"),
        train_log=f"{R}/models/{{variant}}/train_log.jsonl",
        summary=f"{R}/models/{{variant}}/summary.json",
    log:
        f"{LOGS}/train/{{variant}}.log",
    benchmark:
        f"{BENCH}/train/{{variant}}.tsv"
    params:
        shards=shard_prefixes("web"),
        shape=config["model"],
        training=cpt_training,
        checkpoints=lambda wc: f"{R}/checkpoints/{wc.variant}",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=3 * 24 * 60,
        gpus=gpu(8),
    conda:
        "../envs/training.yaml"
    script:
        "../scripts/train.py"


rule export_hf:
    input:
        model=f"{R}/models/{{model}}/mcore",
        tokenizer=f"{R}/tokenizer",
    output:
        directory(f"{R}/models/{{model}}/hf"),
    log:
        f"{LOGS}/export_hf/{{model}}.log",
    benchmark:
        f"{BENCH}/export_hf/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/training.yaml"
    script:
        "../scripts/export_hf.py"
