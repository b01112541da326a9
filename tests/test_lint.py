"""The workflow lints clean (``snakemake --lint``) and is ``snakefmt``-formatted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, copy_workflow, run_snakemake


def test_snakemake_lint_is_clean(tmp_path):
    proc = run_snakemake(copy_workflow(tmp_path / "wf"), "--lint", timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout, proc.stdout[-4000:]


def test_snakefmt_leaves_rules_unchanged():
    snakefmt = Path(sys.executable).parent / "snakefmt"
    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    proc = subprocess.run([str(snakefmt), "--check", *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
