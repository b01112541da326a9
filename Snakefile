from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile is a complete config (config/rho1-tinyllama.yaml); without one, the tiny default.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


report: "report/workflow.rst"


# Threads: every job that trains or fits runs on one thread here (a config's `resources` sets more
# for a cluster's jobs): with two, torch's CPU kernels (and BLAS) reduce in an order that varies from
# run to run, so the base model, and everything after it, differed in the last bits between two runs
# of the same code on the same machine (measured: three pretrain_base runs, three different weights
# files); one thread gives the same bytes every run.
# Job priorities: the clustering variants' critical path (the base and reference models, scoring, the
# trees, assign, the masks: `priority: 10`; CPT training: 5) runs before the many independent
# evaluations and held-out scorings, which can fill the cores while it waits.
include: "rules/common.smk"
include: "rules/fetch.smk"
include: "rules/corpus.smk"
include: "rules/models.smk"
include: "rules/scoring.smk"
include: "rules/clustering.smk"
include: "rules/selection.smk"
include: "rules/heldout.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"
include: "rules/plan.smk"


# once the stage files defined their rules: the config's job sizes name rules that exist
if config["resources"]:
    check_job_sizes()


rule all:
    input:
        final_targets(),
