# The resource plan of the config (python -m rhocluster.planner): jobs, GPU-hours, disk and memory per
# stage. Jobs per rule come from a dry run of this workflow with the same config (--nolock: this run
# holds the lock), costs from the model shape and token counts (measured once shards exist). Not part
# of `all`:
#   snakemake plan --configfile config/rho1-tinyllama.yaml


rule plan:
    output:
        md=f"{R}/plan.md",
        json=f"{R}/plan.json",
    log:
        f"{LOGS}/plan.log",
    benchmark:
        f"{TIMINGS}/plan.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    threads: job_threads("plan", 1)
    resources:
        **job_resources("plan", mem_mb=1000, runtime=10),
    params:
        config=config,
        results=lambda wc, output: str(Path(output.md).parent),
    script:
        "../scripts/plan.py"
