rule prepare_corpus:
    output:
        f"{R}/corpus/{{split}}/{{shard}}.jsonl",
    log:
        f"{LOGS}/prepare_corpus/{{split}}_{{shard}}.log",
    benchmark:
        f"{BENCH}/prepare_corpus/{{split}}_{{shard}}.tsv"
    params:
        synthetic=SYN,
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/corpus.yaml"
    script:
        "../scripts/prepare_corpus.py"


rule train_tokenizer:
    input:
        expand(f"{R}/corpus/pretrain/{{shard}}.jsonl", shard=PRETRAIN_SHARDS),
        expand(f"{R}/corpus/web/{{shard}}.jsonl", shard=WEB_SHARDS),
        expand(f"{R}/corpus/hq/{{shard}}.jsonl", shard=HQ_SHARDS),
    output:
        directory(f"{R}/tokenizer"),
    log:
        f"{LOGS}/train_tokenizer.log",
    benchmark:
        f"{BENCH}/train_tokenizer.tsv"
    params:
        vocab_size=config["tokenizer"].get("vocab_size", 1024),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/corpus.yaml"
    script:
        "../scripts/train_tokenizer.py"


rule tokenize:
    input:
        docs=f"{R}/corpus/{{split}}/{{shard}}.jsonl",
        tokenizer=f"{R}/tokenizer",
    output:
        multiext(f"{R}/shards/{{split}}/{{shard}}", *SHARD_SUFFIXES),
    log:
        f"{LOGS}/tokenize/{{split}}_{{shard}}.log",
    benchmark:
        f"{BENCH}/tokenize/{{split}}_{{shard}}.tsv"
    params:
        prefix=lambda wc: f"{R}/shards/{wc.split}/{wc.shard}",
        seq_len=config["data"]["seq_len"],
        vocab_size=config["model"]["vocab_size"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/corpus.yaml"
    script:
        "../scripts/tokenize.py"
