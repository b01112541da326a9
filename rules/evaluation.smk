rule tiny_benchmarks:
    output:
        directory(f"{R}/benchmarks/harness"),
    log:
        f"{LOGS}/tiny_benchmarks.log",
    benchmark:
        f"{BENCH}/tiny_benchmarks.tsv"
    params:
        n=config["evaluation"].get("tiny_items_per_benchmark", 12),
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/tiny_benchmarks.py"


rule normalize_benchmark:
    input:
        harness_dir(),
    output:
        f"{R}/benchmarks/{{benchmark}}.jsonl",
    log:
        f"{LOGS}/normalize_benchmark/{{benchmark}}.log",
    benchmark:
        f"{BENCH}/normalize_benchmark/{{benchmark}}.tsv"
    params:
        limit=config["evaluation"].get("limit"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/normalize_benchmark.py"


rule evaluate:
    input:
        model=f"{R}/models/{{model}}/hf",
        data=f"{R}/benchmarks/{{benchmark}}.jsonl",
    output:
        summary=f"{R}/eval/{{model}}/{{benchmark}}.json",
        predictions=f"{R}/eval/{{model}}/{{benchmark}}.predictions.jsonl",
    log:
        f"{LOGS}/evaluate/{{model}}_{{benchmark}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{model}}_{{benchmark}}.tsv"
    params:
        backend=config["evaluation"].get("backend", "hf"),
        batch_size=config["evaluation"].get("batch_size", 8),
        max_gen_toks=config["evaluation"].get("max_gen_toks", 1024),
        device=config["evaluation"].get("device", "cpu"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
        gpus=gpu(1),
    conda:
        "../envs/evaluation.yaml"
    script:
        "../scripts/evaluate.py"
