# Documents (jsonl) and their tokenized shards. data.source picks where documents come from: the
# generated corpora of the tiny default, or hub datasets fetched by rules/fetch.smk; tokenizer.source
# picks a tokenizer trained here or the base model's own. Either way tokenize writes the same shards.

if config["data"]["source"] == "synthetic":

    rule prepare_corpus:
        output:
            f"{R}/corpus/{{split}}/{{shard}}.jsonl",
        log:
            f"{LOGS}/prepare_corpus/{{split}}_{{shard}}.log",
        benchmark:
            f"{TIMINGS}/prepare_corpus/{{split}}_{{shard}}.tsv"
        conda:
            "../envs/corpus.yaml"
        threads: job_threads("prepare_corpus", 1)
        resources:
            **job_resources("prepare_corpus", mem_mb=2000, runtime=30),
        params:
            synthetic=SYN,
            seed=config["seed"],
        script:
            "../scripts/prepare_corpus.py"

else:

    # The web files are cut into num_shards + heldout_shards row ranges: heldout_web shard i is range
    # num_shards + i, never trained on.
    rule prepare_web:
        input:
            f"{R}/downloads/owm.json",
        output:
            f"{R}/corpus/{{split}}/{{shard}}.jsonl",
        log:
            f"{LOGS}/prepare_web/{{split}}_{{shard}}.log",
        benchmark:
            f"{TIMINGS}/prepare_web/{{split}}_{{shard}}.tsv"
        wildcard_constraints:
            split="web|heldout_web",
        conda:
            "../envs/hub.yaml"
        threads: job_threads("prepare_web", 1)
        resources:
            **job_resources("prepare_web", mem_mb=8000, runtime=60),
        params:
            n_shards=N_WEB_RANGES + len(HELDOUT_WEB),
            index=lambda wc: int(wc.shard)
            + (N_WEB_RANGES if wc.split == "heldout_web" else 0),
            text_field=config["data"]["web"]["text_field"],
        script:
            "../scripts/prepare_web.py"

    rule prepare_hq:
        input:
            expand(f"{R}/downloads/hq/{{dataset}}.json", dataset=HQ_DATASETS),
        output:
            train=expand(f"{R}/corpus/hq/{{shard}}.jsonl", shard=HQ_SHARDS),
            heldout=expand(f"{R}/corpus/heldout_hq/{{shard}}.jsonl", shard=HELDOUT_HQ),
        log:
            f"{LOGS}/prepare_hq.log",
        benchmark:
            f"{TIMINGS}/prepare_hq.tsv"
        conda:
            "../envs/hub.yaml"
        threads: job_threads("prepare_hq", 2)
        resources:
            **job_resources("prepare_hq", mem_mb=prepare_hq_mem_mb(), runtime=4 * 60),
        params:
            datasets=config["data"]["hq"]["datasets"],
            seed=config["seed"],
            heldout_docs=config["data"]["hq"]["heldout_docs"],
            cache_dir=f"{HUB['cache_dir']}/datasets",
        script:
            "../scripts/prepare_hq.py"


if config["tokenizer"]["source"] == "train":

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
            f"{TIMINGS}/train_tokenizer.tsv"
        conda:
            "../envs/corpus.yaml"
        threads: job_threads("train_tokenizer", 2)
        resources:
            **job_resources("train_tokenizer", mem_mb=4000, runtime=60),
        params:
            vocab_size=config["tokenizer"]["vocab_size"],
        script:
            "../scripts/train_tokenizer.py"

else:

    rule import_tokenizer:
        input:
            config["base"]["hf_dir"],
        output:
            directory(f"{R}/tokenizer"),
        log:
            f"{LOGS}/import_tokenizer.log",
        benchmark:
            f"{TIMINGS}/import_tokenizer.tsv"
        localrule: True
        conda:
            "../envs/corpus.yaml"
        threads: job_threads("import_tokenizer", 1)
        resources:
            **job_resources("import_tokenizer", mem_mb=2000, runtime=10),
        params:
            vocab_size=config["model"]["vocab_size"],
        script:
            "../scripts/import_tokenizer.py"


rule tokenize:
    input:
        docs=f"{R}/corpus/{{split}}/{{shard}}.jsonl",
        tokenizer=f"{R}/tokenizer",
    output:
        multiext(f"{R}/shards/{{split}}/{{shard}}", *SHARD_SUFFIXES),
    log:
        f"{LOGS}/tokenize/{{split}}_{{shard}}.log",
    benchmark:
        f"{TIMINGS}/tokenize/{{split}}_{{shard}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: job_threads("tokenize", 1)
    resources:
        **job_resources("tokenize", mem_mb=4000, runtime=120),
    params:
        prefix=shard_prefix,
        seq_len=config["data"]["seq_len"],
        vocab_size=config["model"]["vocab_size"],
    script:
        "../scripts/tokenize.py"
