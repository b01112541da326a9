"""Write the resource plan of the workflow's config (plan.md, plan.json), its jobs from a dry run."""

from pathlib import Path

from rhocluster.planner import config_job_counts, make_plan, write_plan
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    config = dict(sm.params.config)
    # a dry run of this very workflow (the Snakefile is in scripts/'s parent), with the config it runs
    jobs = config_job_counts(config, Path(sm.scriptdir).parent)
    plan = make_plan(config, jobs, Path(sm.params.results))  # GPUs per job: the config's resources
    write_plan(plan, sm.output.md, sm.output.json)
    log.info("%d jobs, %.1f GPU-hours, %.1f GB", plan.total_jobs, plan.total_gpu_hours, plan.total_disk_bytes / 1e9)
