# Static token masks, one job per mask (a variant's, or a variant's at one seed where the mask depends
# on the seed), one rule for every `mask:` kind of the variant table: the kinds, what each reads and the
# function that writes it are declared once in rhocluster/selection/kinds.py (mask_inputs in
# rules/common.smk asks it). Then the inspection pages that show what the clusters hold and what each
# mask keeps.


rule select_tokens:
    input:
        unpack(mask_inputs),
    output:
        # one directory: the masks/{mask}/{shard}.npy of every web shard and summary.json
        directory(f"{R}/masks/{{mask}}"),
    log:
        f"{LOGS}/select_tokens/{{mask}}.log",
    benchmark:
        f"{TIMINGS}/select_tokens/{{mask}}.tsv"
    priority: 10
    conda:
        "../envs/clustering.yaml"
    threads: job_threads("select_tokens", 1)
    resources:
        **job_resources("select_tokens", mem_mb=8000, runtime=120),
    params:
        prefixes=shard_prefixes("web"),
        masks=lambda wc: mask_files(wc.mask),
        summary=lambda wc: f"{R}/masks/{wc.mask}/summary.json",
        kind=lambda wc: mask_model(wc).variant.mask,
        levels=lambda wc: (
            level_dirs(mask_model(wc).tree)
            if "levels" in mask_model(wc).variant.reads
            else []
        ),
        settings=mask_settings,
    script:
        "../scripts/select_tokens.py"


rule inspect_clusters:
    input:
        unpack(inspect_inputs),
    output:
        figure=report(
            f"{R}/clusters/inspect/cluster_sizes.png",
            caption="../report/cluster_sizes.rst",
            category="Clustering",
        ),
        html=report(
            f"{R}/clusters/inspect/examples.html",
            caption="../report/cluster_examples.rst",
            category="Clustering",
        ),
        markdown=f"{R}/clusters/inspect/examples.md",
    log:
        f"{LOGS}/inspect_clusters.log",
    benchmark:
        f"{TIMINGS}/inspect_clusters.tsv"
    conda:
        "../envs/clustering.yaml"
    threads: job_threads("inspect_clusters", 1)
    resources:
        **job_resources("inspect_clusters", mem_mb=4000, runtime=60),
    params:
        prefixes=shard_prefixes("web"),
        masks={v: mask_files(v) for v in variants_where(tokens="mask")},
        levels=level_dirs("s0"),
        budget=BUDGET,
        inspect=config["selection"]["inspect"],
        seed=config["seed"],
        run=RUN,
    script:
        "../scripts/inspect_clusters.py"
