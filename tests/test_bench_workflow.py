"""bench/workflow.py's accounting: start-up split from the jobs' logs and the critical path from the
run's Snakemake log (a constructed run directory; no workflow is run)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("bench_workflow", REPO / "bench" / "workflow.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

LOG = """Building DAG of jobs...
[Mon Dec  7 08:46:10 2026]
localrule a:
    output: r/x
    log: logs/t/a.log
    jobid: 1
    benchmark: timings/t/a.tsv
    reason: Missing output files: r/x
    resources: tmpdir=/tmp
[Mon Dec  7 08:46:10 2026]
rule b:
    input: r/x
    output: r/y, r/y2
    log: logs/t/b/1.log
    jobid: 2
    benchmark: timings/t/b/1.tsv
    wildcards: i=1
[Mon Dec  7 08:46:11 2026]
rule c:
    input: r/x
    output: r/z
    log: logs/t/c.log
    jobid: 3
    benchmark: timings/t/c.tsv
[Mon Dec  7 08:46:12 2026]
localrule all:
    input: r/y, r/z
    jobid: 0
    reason: Input files updated by another job: r/y, r/z
Finished jobid: 1 (Rule: a)
"""


def _run(tmp_path: Path) -> Path:
    (tmp_path / ".snakemake/log").mkdir(parents=True)
    (tmp_path / ".snakemake/log/2026-12-07T084608.snakemake.log").write_text(LOG)
    for rel, seconds, startup in (("a", 5.0, 1.5), ("b/1", 7.0, 2.0), ("c", 9.0, None)):
        tsv, log = tmp_path / "timings/t" / f"{rel}.tsv", tmp_path / "logs/t" / f"{rel}.log"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:0{int(seconds)}\t100.0\n")
        first = bench.STARTUP.pattern.replace("([0-9.]+)", f"{startup}") if startup is not None else "no line"
        log.write_text(f"2026-12-07 INFO rhocluster: {first}\nwork\n")
    return tmp_path


def test_startup_and_critical_path(tmp_path):
    run = _run(tmp_path)
    rows = {r["rule"]: r for r in bench.per_rule(run / "timings/t", run / "logs/t")}
    assert rows["a"]["startup_s"] == 1.5 and rows["b"]["startup_s"] == 2.0 and rows["c"]["startup_s"] == 0
    jobs = bench.parse_jobs(next((run / ".snakemake/log").glob("*.log")))
    assert jobs[2] == {"rule": "b", "input": ["r/x"], "output": ["r/y", "r/y2"], "benchmark": "timings/t/b/1.tsv"}
    path = bench.run_critical_path(run)
    assert path == {"seconds": 14.0, "rules": ["a", "c"]}  # a (5) then c (9) beats a then b (7)
    md = bench.markdown(list(rows.values()), None, path)
    assert "21 job-seconds, 4 of them start-up (17%)" in md and "14 s: a -> c" in md


def test_the_startup_line_is_what_logged_writes(tmp_path):
    """rhocluster.workflow.scripts.logged writes the line bench parses, from this process' real age."""
    code = (
        "from rhocluster.workflow.scripts import logged\n"
        f"with logged({str(tmp_path / 'job.log')!r}) as log:\n"
        "    log.info('work')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    startup = bench.startup_seconds(tmp_path / "job.log")
    if sys.platform.startswith("linux"):
        assert startup is not None and 0 <= startup < 60
    else:
        pytest.skip("process age is read from /proc (Linux)")
