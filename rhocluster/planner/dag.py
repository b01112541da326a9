"""Jobs per rule of a config's workflow, from Snakemake's own DAG: a dry run of the default target
(`all`) with every job forced, so finished results do not hide the jobs a fresh run would have."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

# Rows of the "Job stats:" table that are not rules of a stage: the target and the sum.
NOT_RULES = ("all", "total")
_SEPARATOR = re.compile(r"^-+\s+-+$")
_ROW = re.compile(r"^(\w+)\s+(\d+)$")
_ERROR = re.compile(r"^\w*(Error|Exception)\b")


class DryRunError(RuntimeError):
    """A dry run that failed or printed no job table."""


def parse_job_stats(output: str) -> dict[str, int]:
    """Jobs per rule from the first "Job stats:" table in Snakemake's output, without `all` and `total`."""
    if "Job stats:" not in output:
        raise ValueError("no 'Job stats:' table in the output")
    jobs: dict[str, int] = {}
    in_table = False
    for line in output.split("Job stats:", 1)[1].splitlines():
        line = line.strip()
        if not in_table:
            in_table = bool(_SEPARATOR.match(line))
            continue
        row = _ROW.match(line)
        if not row:
            break
        jobs[row.group(1)] = int(row.group(2))
    for name in NOT_RULES:
        jobs.pop(name, None)
    return jobs


def dag_job_counts(
    configfiles: Sequence[Path | str], workdir: Path | str = ".", extra_args: Sequence[str] = (), timeout: float = 900
) -> dict[str, int]:
    """Jobs per rule that the workflow in ``workdir`` (where its Snakefile is) would run with these
    config files: ``snakemake --dry-run --forceall`` (without --configfile when none is given)."""
    workdir = Path(workdir).resolve()
    configs = [str(Path(f).resolve()) for f in configfiles]
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--forceall", "--quiet", "rules", "--nolock"]
    cmd += [*(["--configfile", *configs] if configs else []), *extra_args]
    # --nolock: the plan rule dry-runs its own workflow while the outer run holds the lock
    proc = subprocess.run(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    if proc.returncode != 0 or "Job stats:" not in proc.stdout:
        raise DryRunError(f"the dry run failed (exit status {proc.returncode}) in {workdir}: {' '.join(cmd)}\n"
                          + _error_summary(proc.stdout))
    return parse_job_stats(proc.stdout)


def _error_summary(output: str, tail: int = 30) -> str:
    """The output's tail, after the lines above it that name an error (a config error is followed by the
    whole schema, which would push it out of the tail)."""
    lines = output.splitlines()
    start = max(0, len(lines) - tail)
    errors = [line for line in lines[:start] if _ERROR.match(line)][:5]
    return "\n".join([*errors, *(["..."] if errors else []), *lines[start:]])


def config_job_counts(config: dict, workdir: Path | str = ".", extra_args: Sequence[str] = ()) -> dict[str, int]:
    """``dag_job_counts`` of a config given as a dict (written to a temporary YAML file)."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="rhocluster-plan-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return dag_job_counts([path], workdir, extra_args)
