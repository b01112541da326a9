"""Resource plan of a workflow config: jobs, GPU-hours, disk and memory per stage, before running it.

Which rules run and how many times is Snakemake's own answer: a dry run of the config
(``dag.dag_job_counts``, ``snakemake --dry-run --forceall``), whose jobs per rule the stage table
(``costs.STAGES``) groups into stages; a rule the table lacks lands in a last stage, listed without
costs. Each stage's FLOPs, GPU-hours and disk are a per-job cost (``costs.CostModel``) times those counts.
FLOPs come from the model shape and token counts: 6·N per trained token and 2·N per forward token
(``plan.flops: simple``, the convention of the Rho-1 and Chinchilla papers), or
``rhocluster.training.flops`` (``detailed``). GPU-hours are FLOPs / (peak FLOP/s x MFU). Token counts
are read from the tokenized shards when they exist (``results/<run>/shards/*/*.json``; a partial set is
extrapolated), else taken from the config's estimates (``inputs``). Every assumption is in the ``plan``
section of the config and printed with the plan (``render``).

    python -m rhocluster.planner --configfile config/rho1-tinyllama.yaml [--out results/rho1-tinyllama/plan]
"""

from rhocluster.planner.costs import STAGES, CostModel, make_plan, pipeline_efficiency, slm_ranking_pass
from rhocluster.planner.dag import DryRunError, config_job_counts, dag_job_counts, parse_job_stats
from rhocluster.planner.inputs import config_gpus, load_config, shard_lists, token_counts
from rhocluster.planner.render import render_markdown, write_plan
from rhocluster.planner.stages import OTHER, Plan, Stage, StageSpec
from rhocluster.planner.cli import main

__all__ = [
    "OTHER", "STAGES", "CostModel", "DryRunError", "Plan", "Stage", "StageSpec", "config_gpus",
    "config_job_counts", "dag_job_counts", "load_config", "main", "make_plan", "parse_job_stats",
    "pipeline_efficiency", "render_markdown", "shard_lists", "slm_ranking_pass", "token_counts", "write_plan",
]
