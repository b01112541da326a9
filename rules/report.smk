# Tables, figures and the README's results block, from the evaluations, the held-out losses and the
# training logs (paths in rules/common.smk).


rule report_all:
    input:
        REPORT_TARGETS,


rule tables:
    input:
        evals=REPORT_EVAL_FILES,
        summaries=list(label_summaries().values()),
        masks=list(mask_dirs(tokens="mask").values()),
    output:
        results_md=f"{R}/tables/results.md",
        results_csv=report(
            f"{R}/tables/results.csv",
            caption="../report/results_table.rst",
            category="Tables",
        ),
        labels_md=f"{R}/tables/labels.md",
        labels_csv=report(
            f"{R}/tables/labels.csv",
            caption="../report/labels_table.rst",
            category="Tables",
        ),
        variants_csv=report(
            f"{R}/tables/variants.csv",
            caption="../report/variants_table.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/tables.log",
    benchmark:
        f"{TIMINGS}/tables.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("tables", 1)
    resources:
        **job_resources("tables", mem_mb=1000, runtime=10),
    params:
        evals=REPORT_EVALS,
        summaries=label_summaries(),
        models=ROWS,
        replicates=EVAL_REPLICATES,
        label_replicates=CPT_REPLICATES,
        # every static mask's summary, read by the kept-fraction page of an unlabelled corpus
        masks=summary_files(mask_dirs(tokens="mask")),
        benchmarks=BENCHMARKS,
        run=RUN,
        variants={name: vars(row) for name, row in VARIANT_ROWS.items()},
    script:
        "../scripts/tables.py"


rule heldout_tables:
    input:
        losses=[p for m in HELDOUT_LOSSES.values() for ps in m.values() for p in ps],
        shards=[f"{R}/shards/{key}.bin" for key in HELDOUT],
        tokenizer=f"{R}/tokenizer",
        overlap=rules.heldout_overlap.output.json,
    output:
        md=f"{R}/tables/heldout.md",
        losses_csv=report(
            f"{R}/tables/heldout.csv",
            caption="../report/heldout_table.rst",
            category="Tables",
        ),
        differences_csv=f"{R}/tables/heldout_differences.csv",
        seeds_md=f"{R}/tables/heldout_seeds.md",
        seeds_csv=f"{R}/tables/heldout_seeds.csv",
    log:
        f"{LOGS}/heldout_tables.log",
    benchmark:
        f"{TIMINGS}/heldout_tables.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("heldout_tables", 1)
    resources:
        **job_resources("heldout_tables", mem_mb=4000, runtime=30),
    params:
        shards={
            split: [f"{R}/shards/{split}/{shard}" for shard in SHARDS[split]]
            for split in ("heldout_web", "heldout_hq")
            if SHARDS[split]
        },
        losses=HELDOUT_LOSSES,
        replicates=REPLICATES,
        pairs=[p.to_dict() for p in PAIRS],
        skipped_pairs=[p.to_dict() for p in SKIPPED_PAIRS],
        resamples=config["report"]["bootstrap_resamples"],
        seed=config["seed"],
        run=RUN,
        note=trees_note(config, len(cpt_seeds(config))) if TREE_VARIANTS else "",
    script:
        "../scripts/heldout_tables.py"


rule significance:
    input:
        REPORT_EVAL_FILES,
    output:
        ci_md=f"{R}/tables/ci.md",
        ci_csv=f"{R}/tables/ci.csv",
        significance_md=f"{R}/tables/significance.md",
        significance_csv=report(
            f"{R}/tables/significance.csv",
            caption="../report/significance_table.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/significance.log",
    benchmark:
        f"{TIMINGS}/significance.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("significance", 1)
    resources:
        **job_resources("significance", mem_mb=2000, runtime=30),
    params:
        evals=REPORT_EVALS,
        models=ROWS,
        replicates=EVAL_REPLICATES,
        variants=VARIANTS,
        baselines=["ct", "rho1"],
        benchmarks=BENCHMARKS,
        resamples=config["report"]["bootstrap_resamples"],
        seed=config["seed"],
    script:
        "../scripts/significance.py"


rule figure_accuracy:
    input:
        ci=rules.significance.output.ci_csv,
    output:
        report(
            f"{FIGURES}/accuracy.png",
            caption="../report/accuracy.rst",
            category="Results",
        ),
    log:
        f"{LOGS}/figure_accuracy.log",
    benchmark:
        f"{TIMINGS}/figure_accuracy.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("figure_accuracy", 1)
    resources:
        **job_resources("figure_accuracy", mem_mb=1000, runtime=10),
    params:
        run=RUN,
    script:
        "../scripts/figure_accuracy.py"


rule figure_training:
    input:
        list(TRAIN_LOGS.values()),
    output:
        loss=report(
            f"{FIGURES}/loss.png",
            caption="../report/loss.rst",
            category="Training",
        ),
        kept=report(
            f"{FIGURES}/kept_fraction.png",
            caption="../report/kept_fraction.rst",
            category="Training",
        ),
    log:
        f"{LOGS}/figure_training.log",
    benchmark:
        f"{TIMINGS}/figure_training.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("figure_training", 1)
    resources:
        **job_resources("figure_training", mem_mb=1000, runtime=10),
    params:
        logs=TRAIN_LOGS,
        budget=BUDGET,
        run=RUN,
    script:
        "../scripts/figure_training.py"


rule figure_clusters:
    input:
        levels=[
            f"{d}/{name}"
            for d in level_dirs("s0")
            for name in ("sizes.npy", "summary.json")
        ],
        selections=list(mask_dirs(mask="balanced").values()),
    output:
        report(
            f"{FIGURES}/clusters.png",
            caption="../report/clusters.rst",
            category="Clustering",
        ),
    log:
        f"{LOGS}/figure_clusters.log",
    benchmark:
        f"{TIMINGS}/figure_clusters.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("figure_clusters", 1)
    resources:
        **job_resources("figure_clusters", mem_mb=1000, runtime=10),
    params:
        levels=level_dirs("s0"),
        selections=summary_files(mask_dirs(mask="balanced")),
        run=RUN,
    script:
        "../scripts/figure_clusters.py"


rule update_readme:
    input:
        **(
            {
                "heldout": rules.heldout_tables.output.md,
                "heldout_seeds": rules.heldout_tables.output.seeds_md,
            }
            if HELDOUT
            else {}
        ),
        results=rules.tables.output.results_md,
        labels=rules.tables.output.labels_md,
        significance=rules.significance.output.significance_md,
        ci=rules.significance.output.ci_md,
        figure=rules.figure_accuracy.output[0],
    output:
        touch(f"{R}/tables/readme.done"),
    log:
        f"{LOGS}/update_readme.log",
    benchmark:
        f"{TIMINGS}/update_readme.tsv"
    conda:
        "../envs/report.yaml"
    threads: job_threads("update_readme", 1)
    resources:
        **job_resources("update_readme", mem_mb=500, runtime=5),
    params:
        readme=config["report"]["readme"],
        figure=config["report"]["readme_figure"],
        page=config["report"]["readme_page"],
        run=RUN,
    script:
        "../scripts/update_readme.py"
