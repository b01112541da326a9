rule pretrain_base:
    input:
        base_model_rule_input,
    output:
        model=directory(f"{R}/models/base/mcore"),
        train_log=f"{R}/models/base/train_log.jsonl",
        summary=f"{R}/models/base/summary.json",
        plot=report(
            f"{R}/models/base/loss.png",
            caption="../report/model_loss.rst",
            category="Training",
        ),
    log:
        f"{LOGS}/pretrain_base.log",
    benchmark:
        f"{TIMINGS}/pretrain_base.tsv"
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: job_threads("pretrain_base", 1)
    resources:
        **job_resources("pretrain_base", mem_mb=8000, runtime=24 * 60, gpus=0),
    params:
        shards=shard_prefixes("pretrain"),
        shape=config["model"],
        training=base_training(),
        checkpoints=f"{R}/checkpoints/base",
        source=config["base"]["source"],
    script:
        "../scripts/pretrain_base.py"


rule train_reference:
    input:
        shards=all_shard_files("hq"),
        init=rules.pretrain_base.output.model,
    output:
        model=directory(f"{R}/models/reference/mcore"),
        train_log=f"{R}/models/reference/train_log.jsonl",
        summary=f"{R}/models/reference/summary.json",
        plot=report(
            f"{R}/models/reference/loss.png",
            caption="../report/model_loss.rst",
            category="Training",
        ),
    log:
        f"{LOGS}/train_reference.log",
    benchmark:
        f"{TIMINGS}/train_reference.tsv"
    priority: 10
    conda:
        "../envs/training.yaml"
    threads: job_threads("train_reference", 1)
    resources:
        **job_resources("train_reference", mem_mb=8000, runtime=24 * 60, gpus=0),
    params:
        shards=shard_prefixes("hq"),
        shape=config["model"],
        training=train_config("reference"),
        checkpoints=f"{R}/checkpoints/reference",
    script:
        "../scripts/train_reference.py"


rule train_cpt:
    input:
        unpack(cpt_inputs),
    output:
        model=directory(f"{R}/models/{{model}}/mcore"),
        train_log=f"{R}/models/{{model}}/train_log.jsonl",
        summary=f"{R}/models/{{model}}/summary.json",
        plot=report(
            f"{R}/models/{{model}}/loss.png",
            caption="../report/model_loss.rst",
            category="Training",
        ),
    log:
        f"{LOGS}/train_cpt/{{model}}.log",
    benchmark:
        f"{TIMINGS}/train_cpt/{{model}}.tsv"
    wildcard_constraints:
        model=one_of(list(CPT)),
    priority: 5
    conda:
        "../envs/training.yaml"
    # one thread: on the tiny default two CPT runs share the 2 cores better than one run uses both
    # (profiles set the threads of a cluster job)
    threads: job_threads("train_cpt", 1)
    resources:
        **job_resources("train_cpt", mem_mb=8000, runtime=3 * 24 * 60, gpus=0),
    params:
        shards=shard_prefixes("web"),
        shape=config["model"],
        training=cpt_training,
        checkpoints=lambda wc: f"{R}/checkpoints/{wc.model}",
        masks=lambda wc: (
            mask_files(CPT[wc.model].mask_key) if CPT[wc.model].variant.mask else []
        ),
        levels=lambda wc: (
            level_dirs(CPT[wc.model].tree) if CPT[wc.model].variant.group_level else []
        ),
    script:
        "../scripts/train_cpt.py"


rule export_hf:
    input:
        model=f"{R}/models/{{model}}/mcore",
        tokenizer=f"{R}/tokenizer",
    output:
        directory(f"{R}/models/{{model}}/hf"),
    log:
        f"{LOGS}/export_hf/{{model}}.log",
    benchmark:
        f"{TIMINGS}/export_hf/{{model}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: job_threads("export_hf", 1)
    resources:
        **job_resources("export_hf", mem_mb=8000, runtime=60),
    script:
        "../scripts/export_hf.py"
