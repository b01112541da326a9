"""The planner's command line: ``python -m rhocluster.planner``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from rhocluster.planner.costs import make_plan
from rhocluster.planner.dag import dag_job_counts
from rhocluster.planner.inputs import load_config
from rhocluster.planner.render import render_markdown, write_plan


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the plan of a config (and write plan.md / plan.json with --out)."""
    parser = argparse.ArgumentParser(
        prog="python -m rhocluster.planner",
        description="Resource plan of a workflow config (jobs from a Snakemake dry run): jobs, GPU-hours, "
        "disk and memory per stage.",
    )
    parser.add_argument("--configfile", nargs="+", type=Path, default=[Path("config/config.yaml")])
    parser.add_argument("--workflow", type=Path, default=Path("."), help="the workflow directory (its Snakefile)")
    parser.add_argument("--schema", type=Path, help="default: WORKFLOW/config/schema.yaml")
    parser.add_argument("--results", type=Path, help="results/<run> directory to measure shards in")
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)
    config = load_config(args.configfile, args.schema or args.workflow / "config/schema.yaml")
    jobs = dag_job_counts(args.configfile, args.workflow)
    results = args.results or args.workflow / "results" / config["run"]
    plan = make_plan(config, jobs, results)  # GPUs per job: the config's resources
    if args.out:
        write_plan(plan, args.out.with_suffix(".md"), args.out.with_suffix(".json"))
    sys.stdout.write(render_markdown(plan))
    return 0
