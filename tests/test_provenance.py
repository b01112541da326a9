"""The committed results are checked by reproducing them: the suite's tiny run must land inside the
committed cells' own intervals (rhocluster.reporting.reproduce). The code fingerprint the block records
(rhocluster.workflow.provenance) says which code wrote it; it is information, not a check."""

from __future__ import annotations

from pathlib import Path

import pytest

from rhocluster.workflow.provenance import code_files, code_fingerprint
from rhocluster.reporting.readme import readme_fingerprint
from rhocluster.reporting.reproduce import compare_results, results_block

REPO = Path(__file__).resolve().parents[1]
PAGE = Path("docs/results.md")  # config report.readme_page: the generated page beside the README block


def test_fingerprint_covers_the_code_and_changes_with_it(tmp_path):
    files = {p.relative_to(REPO).as_posix() for p in code_files(REPO)}
    assert {
        "Snakefile",
        "config/config.yaml",
        "rules/common.smk",
        "rhocluster/workflow/variants.yaml",
        "scripts/train_cpt.py",
    } <= files
    assert not any(f.startswith(("tests/", "docs/", "bench/")) for f in files)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.smk").write_text("rule a:\n")
    before = code_fingerprint(tmp_path)
    (tmp_path / "rules" / "a.smk").write_text("rule b:\n")
    assert code_fingerprint(tmp_path) != before


def test_the_accuracy_page_comes_from_the_same_run_as_the_readme():
    """docs/results.md (written whole by update_readme beside the README block) records the same code."""
    page = (REPO / PAGE).read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_fingerprint(page) is not None and readme_fingerprint(page) == readme_fingerprint(readme)


@pytest.mark.slow
def test_the_tiny_run_reproduces_the_committed_results(tiny_run):
    """Every held-out loss, paired difference and kept-fraction cell of the suite's tiny run agrees with
    the committed README block and docs/results.md within the two runs' own 95% intervals (they overlap;
    rhocluster.reporting.reproduce says why), and every table has the committed rows and columns. On
    failure: if the change was meant to move the results, rerun `make run` (or `snakemake --cores all`)
    and commit the regenerated README, docs/results.md and docs/results.png. With unchanged code it is
    exact on the machine that wrote the committed tables (one-thread jobs write the same bytes) and holds
    across float paths (docs/performance.md#measured-figures: a two-thread run)."""
    problems = []
    for name, read in (
        ("README.md", lambda root: results_block((root / "README.md").read_text(encoding="utf-8"))),
        (str(PAGE), lambda root: (root / PAGE).read_text(encoding="utf-8")),
    ):
        problems += map(str, compare_results(read(REPO), read(tiny_run), name))
    fingerprints = ", ".join(
        f"{who} by code {readme_fingerprint((root / 'README.md').read_text(encoding='utf-8'))}"
        for who, root in (("committed", REPO), ("rerun", tiny_run))
    )
    assert not problems, f"the tiny run does not reproduce the committed results ({fingerprints}):\n" + "\n".join(
        problems
    )
