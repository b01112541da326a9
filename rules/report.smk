rule tables:
    input:
        evals=[path for _, _, path in eval_files()],
        summaries=list(label_summaries().values()),
    output:
        results_md=f"{R}/tables/results.md",
        results_csv=f"{R}/tables/results.csv",
        labels_md=f"{R}/tables/labels.md",
        labels_csv=f"{R}/tables/labels.csv",
    log:
        f"{LOGS}/tables.log",
    benchmark:
        f"{BENCH}/tables.tsv"
    params:
        evals=eval_files(),
        summaries=label_summaries(),
        models=MODELS,
        benchmarks=BENCHMARKS,
        run=RUN,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/tables.py"


rule update_readme:
    input:
        results=f"{R}/tables/results.md",
        labels=f"{R}/tables/labels.md",
    output:
        touch(f"{R}/tables/readme.done"),
    log:
        f"{LOGS}/update_readme.log",
    benchmark:
        f"{BENCH}/update_readme.tsv"
    params:
        readme=config["report"].get("readme", "README.md"),
        run=RUN,
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/update_readme.py"
