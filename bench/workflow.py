"""Whole-workflow budget: wall time and peak memory of ``snakemake --cores N`` plus a per-rule breakdown.

Runs the workflow in a fresh copy of the repository's workflow files (so it never touches your
``results/``), samples the summed RSS of snakemake and all its children every 0.2 s (the true peak of
concurrent jobs, which Snakemake's per-job ``benchmark:`` files cannot show), then summarizes the
per-job benchmark files by rule.

    python bench/workflow.py --cores 2 --json bench/workflow.json
    python bench/workflow.py --in-place          # run in the repository (results/, README) instead
    python bench/workflow.py --summarize .      # only the per-rule table of an existing run

The smoke run (config/rho1-smoke.yaml over the real config; budget 10 min and 8 GB on 2 cores), from an
empty results/, its benchmark files from a local copy of the harness:

    python -m rhocluster.hub local resources/hub
    python -m rhocluster.evaluation.mirror ../shared/benchmarks/math-evaluation-harness-7fd4949 -- \
        python bench/workflow.py --in-place --run rho1-smoke --json bench/smoke.json \
        --configfile config/rho1-tinyllama.yaml config/rho1-smoke.yaml
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "rules", "scripts", "config", "envs", "report", "profiles", "README.md"]


def tree_rss(proc: psutil.Process) -> int:
    """Summed resident memory (bytes) of ``proc`` and all its descendants."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_workflow(workdir: Path, cores: str, extra: list[str]) -> dict:
    """Run snakemake in ``workdir``; return wall seconds, peak summed RSS and the return code."""
    exe = Path(sys.executable).parent / "snakemake"
    start = time.perf_counter()
    proc = subprocess.Popen([str(exe), "--cores", cores, *extra], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, tree_rss(ps))
            except psutil.NoSuchProcess:
                return
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(err.decode()[-4000:])
    return {"wall_s": wall, "peak_rss_gb": peak / 1e9, "returncode": proc.returncode}


STARTUP = re.compile(r"start-up ([0-9.]+) s before this job's work")


def job_seconds(tsv: Path) -> float:
    """Wall seconds of one job from its Snakemake ``benchmark:`` file."""
    with open(tsv) as fh:
        return sum(float(row["s"]) for row in csv.DictReader(fh, delimiter="\t"))


def startup_seconds(log: Path) -> float | None:
    """The start-up a job's log records on its first line (rhocluster.workflow.scripts.logged), if any."""
    try:
        with open(log) as fh:
            match = STARTUP.search(fh.readline())
    except OSError:
        return None
    return float(match.group(1)) if match else None


def per_rule(bench_dir: Path, log_dir: Path | None = None) -> list[dict]:
    """Jobs, summed wall seconds, max RSS (MB) per rule from Snakemake ``benchmark:`` files, and, from the
    jobs' logs under ``log_dir`` (same relative path, ``.log``), the part of those seconds spent starting
    up (interpreter, imports) before the job's work."""
    stats: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "startup_s": 0.0, "max_rss_mb": 0.0})
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        rel = tsv.relative_to(bench_dir)
        rule = rel.parts[0].removesuffix(".tsv")  # timings/{run}/{rule}[/...]
        with open(tsv) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        for row in rows:
            s = stats[rule]
            s["jobs"] += 1
            s["seconds"] += float(row["s"])
            rss = row.get("max_rss", "-")
            if rss not in ("-", "NA", ""):
                s["max_rss_mb"] = max(s["max_rss_mb"], float(rss))
        startup = startup_seconds(log_dir / rel.with_suffix(".log")) if log_dir else None
        stats[rule]["startup_s"] += startup or 0.0
    return [{"rule": r, **v} for r, v in sorted(stats.items(), key=lambda kv: -kv[1]["seconds"])]


JOB = re.compile(r"^\s*(?:local)?rule (\w+):\n(.*?)^\s+jobid: (\d+)\n(.*?)(?=^\S|\Z)", re.M | re.S)


def parse_jobs(snakemake_log: Path) -> dict[int, dict]:
    """Every job of a run's Snakemake log: rule, input and output paths, and its ``benchmark:`` file."""
    jobs = {}
    for m in JOB.finditer(Path(snakemake_log).read_text()):
        fields: dict[str, list[str]] = {}
        for line in (m.group(2) + m.group(4)).splitlines():
            key, _, value = line.strip().partition(": ")
            fields[key] = [v.strip() for v in value.split(", ")] if value else []
        jobs[int(m.group(3))] = {
            "rule": m.group(1),
            "input": fields.get("input", []),
            "output": fields.get("output", []),
            "benchmark": (fields.get("benchmark") or [None])[0],
        }
    return jobs


def critical_path(jobs: dict[int, dict], seconds: dict[int, float]) -> tuple[float, list[str]]:
    """The longest chain of jobs by wall seconds (a job waits for the jobs making its inputs): the run's
    lower bound on wall time with unlimited cores. Returns its seconds and its rules, first to last."""
    maker = {path: j for j, job in jobs.items() for path in job["output"]}
    memo: dict[int, tuple[float, list[str]]] = {}

    def longest(j: int) -> tuple[float, list[str]]:
        if j not in memo:
            before = [longest(maker[p]) for p in jobs[j]["input"] if maker.get(p) not in (None, j)]
            best = max(before, default=(0.0, []), key=lambda t: t[0])
            memo[j] = (best[0] + seconds.get(j, 0.0), [*best[1], jobs[j]["rule"]])
        return memo[j]

    return max((longest(j) for j in jobs), default=(0.0, []), key=lambda t: t[0])


def run_critical_path(workdir: Path) -> dict | None:
    """Critical path of the latest run in ``workdir`` (its Snakemake log and benchmark files)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return None
    jobs = parse_jobs(logs[-1])
    seconds = {j: job_seconds(workdir / job["benchmark"]) for j, job in jobs.items()
               if job["benchmark"] and (workdir / job["benchmark"]).exists()}
    total, chain = critical_path(jobs, seconds)
    return {"seconds": total, "rules": chain}


def markdown(rows: list[dict], total: dict | None, path: dict | None = None) -> str:
    lines = []
    if total:
        lines += [
            f"Total: {total['wall_s'] / 60:.1f} min wall, peak memory {total['peak_rss_gb']:.2f} GB "
            f"(all concurrent processes), {total['cores']} cores.",
            "",
        ]
    lines += [
        "| rule | jobs | job-seconds | of which start-up | s/job | max RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['rule']} | {r['jobs']} | {r['seconds']:.0f} | {r.get('startup_s', 0):.0f} | "
        f"{r['seconds'] / max(1, r['jobs']):.1f} | {r['max_rss_mb']:.0f} |"
        for r in rows
    ]
    seconds, startup = sum(r["seconds"] for r in rows), sum(r.get("startup_s", 0) for r in rows)
    lines += ["", f"All jobs: {seconds:.0f} job-seconds, {startup:.0f} of them start-up ({100 * startup / max(1, seconds):.0f}%)."]
    if path:
        lines.append(
            f"Critical path (the longest chain of jobs, a bound with unlimited cores): {path['seconds']:.0f} s: "
            + " -> ".join(path["rules"])
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", default="all")
    ap.add_argument("--summarize", type=Path, help="only summarize the benchmark files of a finished run in this dir")
    ap.add_argument("--run", default="tiny", help="run name (config key `run`)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    ap.add_argument("--in-place", action="store_true", help="run in the repository itself (writes results/ and README)")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args, extra = ap.parse_known_args()
    total = None
    if args.summarize:
        workdir = args.summarize
    elif args.in_place:
        workdir = REPO
        total = run_workflow(workdir, args.cores, extra)
        total["cores"] = psutil.cpu_count() if args.cores == "all" else int(args.cores)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="rhocluster-bench-"))
        for name in WORKFLOW_FILES:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, workdir / name)
            elif src.exists():
                shutil.copy2(src, workdir / name)
        total = run_workflow(workdir, args.cores, extra)
        total["cores"] = psutil.cpu_count() if args.cores == "all" else int(args.cores)
    rows = per_rule(workdir / "timings" / args.run, workdir / "logs" / args.run)
    path = run_critical_path(workdir)
    print(markdown(rows, total, path))
    if args.json:
        args.json.write_text(json.dumps({"total": total, "rules": rows, "critical_path": path}, indent=2) + "\n")
    if not args.summarize and not args.in_place and not args.keep:
        shutil.rmtree(workdir)
    if total and total["returncode"] != 0:
        sys.exit(total["returncode"])


if __name__ == "__main__":
    main()
