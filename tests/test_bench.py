"""The benchmark scripts run, at toy sizes, and write what README's figures are read from.

No timing is asserted (benchmarks measure; tests check): only that each script still runs end to end,
that its JSON holds the fields the README quotes, and the correctness figures each one checks on the
side (equal losses of the two training loops, grader agreement, k-means inertia next to sklearn's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED

pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def test_trainer_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "trainer.json"
    run_bench("trainer.py", str(out), "--steps", "3", "--warmup", "1", "--rounds", "1", "--batch", "2", "--seq", "16")
    result = json.loads(out.read_text())
    assert set(result["loops"]) == {"megatron", "hf"} and result["speed_ratio"] > 0
    # Both loops train the same model on the same data: the same losses.
    assert result["first_step_loss"]["megatron"] == pytest.approx(result["first_step_loss"]["hf"], abs=1e-5)
    assert result["max_loss_gap"] < 1e-4


def test_clustering_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "clustering.json"
    run_bench(
        "clustering.py", "--json", str(out), "--n", "3000", "--d", "8", "--levels", "20", "5", "2",
        "--skip", "ours_all_points", "torch", "--assign-windows", "4", "--assign-scales", "1", "2",
        "--resampling-rounds", "2", "--long-tail-seeds", "1",
    )
    result = json.loads(out.read_text())
    ours = result["kmeans"]["ours"]
    assert len(ours["seconds_per_level"]) == 3 and ours["speedup_vs_sklearn"] > 0
    assert ours["inertia_vs_sklearn"] < 1.1
    assert len(result["kmeans"]["ours_resampling"]["seconds_per_level"]) == 3
    dense = result["long_tail"]["centroids_in_densest"]
    assert dense["resampling"][0] < dense["plain"][0]
    assert [a["scale"] for a in result["assign"]] == [1, 2]
    assert all(a["tokens"] > 0 and a["tokens_per_s"] > 0 for a in result["assign"])


@pytest.mark.skipif(not (SHARED / "reference").is_dir(), reason=f"{SHARED} absent (released Rho-1 completions)")
def test_evaluation_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "evaluation.json"
    run_bench("evaluation.py", str(out), "--repeats", "1", "--gen-benchmarks", "")
    grading = {row["benchmark"]: row for row in json.loads(out.read_text())["grading"]}
    assert len(grading) == 9 and all(row["per_s"] > 0 for row in grading.values())
    # Grading the released completions gives the published accuracies with the harness' verdicts.
    assert grading["gsm8k"]["agreement"] == 1.0 and round(grading["gsm8k"]["accuracy"], 1) == 36.2
    assert grading["math"]["agreement"] == 1.0 and round(grading["math"]["accuracy"], 1) == 15.8
