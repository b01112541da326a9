"""The real experiment in miniature (`make smoke`): config/rho1-tinyllama.yaml with only config/rho1-smoke.yaml
over it (sizes, device, hub sources), end to end from an empty directory, offline: the local hub in the
real repositories' layouts, the harness' real benchmark files through the real fetch path from a mirror
on localhost, every stage on unlabelled data, the tables, figures and `snakemake --report`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rhocluster.evaluation.benchmarks import build_prompt, load_harness_items
from rhocluster.evaluation.mirror import mirror_env, serve
from rhocluster.workflow.variants import load_variants
from tests.conftest import REPO, SHARED, copy_workflow, run_snakemake

HARNESS = SHARED / "benchmarks" / "math-evaluation-harness-7fd4949"
needs_harness = pytest.mark.skipif(not HARNESS.is_dir(), reason=f"harness data not found at {HARNESS} (shared/ absent)")
CONFIGS = ("--configfile", "config/rho1-tinyllama.yaml", "config/rho1-smoke.yaml")
SMOKE = yaml.safe_load((REPO / "config/rho1-smoke.yaml").read_text())
R = "results/rho1-smoke"


def write_hub(work: Path) -> None:
    subprocess.run([sys.executable, "-m", "rhocluster.hub", "local", "resources/hub"], cwd=work, check=True,
                   capture_output=True)  # fmt: skip


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """A finished smoke run in a fresh copy of the workflow, as `make smoke` runs it."""
    work = copy_workflow(tmp_path_factory.mktemp("smoke"))
    start = time.perf_counter()
    write_hub(work)
    with serve(HARNESS) as url, pytest.MonkeyPatch.context() as mp:
        for key, value in mirror_env(url).items():
            mp.setenv(key, value)
        proc = run_snakemake(work, "--cores", "all", *CONFIGS, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"smoke run failed (rc={proc.returncode}):\n{proc.stdout[-8000:]}")
    print(f"smoke run finished in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return work


@needs_harness
def test_the_smoke_run_ends_with_tables_for_every_variant(smoke_run):
    config = yaml.safe_load((REPO / "config/rho1-tinyllama.yaml").read_text())
    rows = ["base", "reference", *load_variants(config)]
    tables = smoke_run / R / "tables"
    results = (tables / "results.md").read_text()
    heldout = (tables / "heldout.md").read_text()
    for row in rows:
        assert f"\n| {row} |" in results and f"\n| {row} |" in heldout, row
    assert "web (all)" in heldout and "problems" in heldout, "the real held-out splits: web row ranges and HQ documents"
    n_line = ", ".join(f"{name} {SMOKE['evaluation']['limit']}" for name in ("GSM8K", "SVAMP"))
    assert n_line in results
    labels = (tables / "labels.md").read_text()
    assert labels.startswith("No ground-truth token labels in this corpus")
    for ranked in ("excess_static", "cluster_excess", "cluster_filter", "excess_smoothed"):
        line = next(x for x in labels.splitlines() if x.startswith(f"| {ranked} |"))
        assert "[" in line.split("|")[3], f"{ranked}: excess loss of its kept tokens"
    for name in ("significance.md", "ci.md"):
        assert (tables / name).stat().st_size > 0
    figures = {p.name for p in (smoke_run / R / "figures").iterdir()}
    assert {"accuracy.png", "loss.png", "kept_fraction.png", "clusters.png"} <= figures
    report = run_snakemake(smoke_run, "--report", "report.html", *CONFIGS, timeout=600)
    assert report.returncode == 0 and (smoke_run / "report.html").stat().st_size > 0, report.stdout[-3000:]


@needs_harness
def test_the_smoke_run_read_the_hub_and_the_benchmarks_through_the_real_fetch_path(smoke_run):
    owm = json.loads((smoke_run / R / "downloads/owm.json").read_text())
    assert owm["commit"].startswith("local-") and len(owm["files"]) == 3
    for f in owm["files"]:
        assert hashlib.sha256(Path(f["local_path"]).read_bytes()).hexdigest() == f["sha256"] and f["num_rows"] > 0
    model = json.loads((smoke_run / SMOKE["base"]["hf_dir"] / "fetch.json").read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {f["path"] for f in model["files"]}
    fetched = json.loads((smoke_run / R / "benchmarks/fetched/fetch.json").read_text())
    sums = dict(line.split()[::-1] for line in (HARNESS / "SHA256SUMS").read_text().splitlines())
    assert fetched["files"] and all(f["pinned"] and sums[f"./{f['path']}"] == f["sha256"] for f in fetched["files"])
    for shard in ("web/00000", "heldout_web/00000", "hq/00000", "heldout_hq/00000"):
        assert json.loads((smoke_run / R / f"shards/{shard}.json").read_text())["has_labels"] is False


@needs_harness
def test_the_smoke_run_asked_the_harness_prompts_on_the_first_items(smoke_run):
    """The real prompts, byte for byte, on the first N items of each benchmark, every prompt whole in the
    model's context."""
    n = SMOKE["evaluation"]["limit"]
    for bench in SMOKE["evaluation"]["benchmarks"]:
        items = load_harness_items(HARNESS, bench)[:n]
        want = [hashlib.sha256(build_prompt(HARNESS, bench, it["question"]).encode()).hexdigest() for it in items]
        for model in ("base", "cluster_slm"):
            summary = json.loads((smoke_run / R / f"eval/{model}/{bench}.json").read_text())
            assert summary["n"] == n and summary["generation"]["positions"] == 2048
            assert summary["generation"]["overlong_prompts"] == 0
            preds = [json.loads(x) for x in (smoke_run / R / f"eval/{model}/{bench}.predictions.jsonl").read_text().splitlines()]
            assert [p["prompt_sha256"] for p in preds] == want, (model, bench)
            assert [p["id"] for p in preds] == [it["id"] for it in items]


def test_without_mirror_or_network_the_run_stops_before_any_job(tmp_path, monkeypatch):
    """No mirror and the pinned URLs unreachable: the run stops before any job, naming the files it needs
    and how to supply them (the hub and the downloads are untouched)."""
    work = copy_workflow(tmp_path / "wf")
    write_hub(work)
    manifest = yaml.safe_load((work / "config/rho1_benchmark_files.yaml").read_text())
    for entry in manifest["files"]:
        entry["url"] = f"http://127.0.0.1:9/{entry['path']}"
    (work / "config/offline_manifest.yaml").write_text(yaml.safe_dump(manifest))
    (work / "config/offline.yaml").write_text(yaml.safe_dump(
        {"evaluation": {"fetch": {"manifest": "config/offline_manifest.yaml", "cache_dir": "resources/empty"}}}
    ))  # fmt: skip
    monkeypatch.delenv("RHO_BENCHMARK_MIRROR", raising=False)
    proc = run_snakemake(work, "--cores", "1", *CONFIGS, "config/offline.yaml", timeout=600)
    assert proc.returncode != 0 and "Stopped before starting any job" in proc.stdout, proc.stdout[-3000:]
    assert "data/gsm8k/test.jsonl" in proc.stdout and "RHO_BENCHMARK_MIRROR" in proc.stdout
    assert not (work / "results").exists() and not (work / "resources/models").exists()
