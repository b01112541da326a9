rule tiny_benchmarks:
    output:
        directory(f"{R}/benchmarks/harness"),
    log:
        f"{LOGS}/tiny_benchmarks.log",
    benchmark:
        f"{TIMINGS}/tiny_benchmarks.tsv"
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("tiny_benchmarks", 1)
    resources:
        **job_resources("tiny_benchmarks", mem_mb=1000, runtime=10),
    params:
        n=config["evaluation"]["tiny_items_per_benchmark"],
        seed=config["seed"],
    script:
        "../scripts/tiny_benchmarks.py"


rule fetch_benchmarks:
    input:
        manifest=config["evaluation"]["fetch"]["manifest"],
    output:
        directory(f"{R}/benchmarks/fetched"),
    log:
        f"{LOGS}/fetch_benchmarks.log",
    benchmark:
        f"{TIMINGS}/fetch_benchmarks.tsv"
    localrule: True
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("fetch_benchmarks", 1)
    resources:
        **job_resources("fetch_benchmarks", mem_mb=500, runtime=30),
    params:
        benchmarks=BENCHMARKS,
        cache_dir=config["evaluation"]["fetch"]["cache_dir"],
        retries=config["evaluation"]["fetch"]["retries"],
        timeout_s=config["evaluation"]["fetch"]["timeout_s"],
    script:
        "../scripts/fetch_benchmarks.py"


rule normalize_benchmark:
    input:
        harness_dir(),
    output:
        f"{R}/benchmarks/{{benchmark}}.jsonl",
    log:
        f"{LOGS}/normalize_benchmark/{{benchmark}}.log",
    benchmark:
        f"{TIMINGS}/normalize_benchmark/{{benchmark}}.tsv"
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("normalize_benchmark", 1)
    resources:
        **job_resources("normalize_benchmark", mem_mb=2000, runtime=10),
    params:
        limit=config["evaluation"].get("limit"),
        # the harness' real data (fetched or a local copy) must hold every item
        check_count=config["evaluation"]["source"] != "tiny",
    script:
        "../scripts/normalize_benchmark.py"


# One job per model: all benchmarks in one process, the model and the libraries loaded once (their
# import was most of a per-benchmark job's time); each benchmark's two files are written atomically.
rule evaluate:
    input:
        model=f"{R}/models/{{model}}/hf",
        data=expand(rules.normalize_benchmark.output[0], benchmark=BENCHMARKS),
    output:
        summaries=expand(
            f"{R}/eval/{{{{model}}}}/{{benchmark}}.json", benchmark=BENCHMARKS
        ),
        predictions=expand(
            f"{R}/eval/{{{{model}}}}/{{benchmark}}.predictions.jsonl",
            benchmark=BENCHMARKS,
        ),
    log:
        f"{LOGS}/evaluate/{{model}}.log",
    benchmark:
        f"{TIMINGS}/evaluate/{{model}}.tsv"
    conda:
        "../envs/evaluation.yaml"
    threads: job_threads("evaluate", 1)
    resources:
        **job_resources("evaluate", mem_mb=8000, runtime=12 * 60, gpus=0),
    params:
        benchmarks=BENCHMARKS,
        backend=config["evaluation"]["backend"],
        batch_size=config["evaluation"]["batch_size"],
        max_gen_toks=config["evaluation"]["max_gen_toks"],
        device=config["evaluation"]["device"],
        # engine settings matter only to vllm: changing them must not rerun hf evaluations
        vllm=(
            config["evaluation"]["vllm"]
            if config["evaluation"]["backend"] == "vllm"
            else {}
        ),
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"
