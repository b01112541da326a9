# Downloads from the Hugging Face hub (fetch_benchmarks, in rules/evaluation.smk, downloads the test sets). Each resolves a pinned
# revision, verifies every file against the hub's checksums (and config sha256 pins) and writes a
# manifest; files live in hub.cache_dir, where interrupted downloads resume and finished ones are
# reused. Local rules: they run on the host that runs snakemake (login nodes reach the internet,
# compute nodes often do not). See rhocluster/hub/download.py.

if config["data"]["source"] == "hf":

    rule fetch_owm:
        output:
            f"{R}/downloads/owm.json",
        log:
            f"{LOGS}/fetch_owm.log",
        benchmark:
            f"{TIMINGS}/fetch_owm.tsv"
        localrule: True
        conda:
            "../envs/hub.yaml"
        threads: job_threads("fetch_owm", 4)
        resources:
            **job_resources("fetch_owm", mem_mb=4000, runtime=24 * 60),
        params:
            spec=config["data"]["web"],
            repo_type="dataset",
            key="data.web",
            cache_dir=HUB["cache_dir"],
            allow_unpinned=HUB["allow_unpinned"],
        script:
            "../scripts/fetch_owm.py"

    rule fetch_hq_dataset:
        output:
            f"{R}/downloads/hq/{{dataset}}.json",
        log:
            f"{LOGS}/fetch_hq_dataset/{{dataset}}.log",
        benchmark:
            f"{TIMINGS}/fetch_hq_dataset/{{dataset}}.tsv"
        wildcard_constraints:
            dataset="|".join(HQ_DATASETS),
        localrule: True
        conda:
            "../envs/hub.yaml"
        threads: job_threads("fetch_hq_dataset", 1)
        resources:
            **job_resources("fetch_hq_dataset", mem_mb=2000, runtime=6 * 60),
        params:
            spec=lambda wc: hq_dataset(wc.dataset),
            repo_type="dataset",
            key=lambda wc: f"data.hq.datasets[{HQ_DATASETS.index(wc.dataset)}]",
            cache_dir=HUB["cache_dir"],
            allow_unpinned=HUB["allow_unpinned"],
        script:
            "../scripts/fetch_hq_dataset.py"


if config["base"]["source"] == "hf" and "hub" in config["base"]:

    rule fetch_base_model:
        output:
            directory(config["base"]["hf_dir"]),
        log:
            f"{LOGS}/fetch_base_model.log",
        benchmark:
            f"{TIMINGS}/fetch_base_model.tsv"
        localrule: True
        conda:
            "../envs/hub.yaml"
        threads: job_threads("fetch_base_model", 1)
        resources:
            **job_resources("fetch_base_model", mem_mb=2000, runtime=6 * 60),
        params:
            spec=config["base"].get("hub"),
            repo_type="model",
            key="base.hub",
            cache_dir=HUB["cache_dir"],
            allow_unpinned=HUB["allow_unpinned"],
        script:
            "../scripts/fetch_base_model.py"
