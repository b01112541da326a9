"""The committed README's results come from a run of the committed code (rhocluster.provenance)."""

from __future__ import annotations

from pathlib import Path

from rhocluster.provenance import code_files, code_fingerprint
from rhocluster.reporting.readme import readme_fingerprint

REPO = Path(__file__).resolve().parents[1]


def test_fingerprint_covers_the_code_and_changes_with_it(tmp_path):
    files = {p.relative_to(REPO).as_posix() for p in code_files(REPO)}
    assert {"Snakefile", "config/config.yaml", "rules/common.smk", "rhocluster/variants.yaml", "scripts/train_cpt.py"} <= files
    assert not any(f.startswith(("tests/", "docs/", "bench/")) for f in files)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.smk").write_text("rule a:\n")
    before = code_fingerprint(tmp_path)
    (tmp_path / "rules" / "a.smk").write_text("rule b:\n")
    assert code_fingerprint(tmp_path) != before


def test_readme_results_come_from_the_committed_code():
    """Fails when the code changed after the run that wrote README's tables: rerun `make run` (or
    `snakemake --cores all`) and commit the regenerated README and docs/results.png."""
    recorded = readme_fingerprint((REPO / "README.md").read_text(encoding="utf-8"))
    assert recorded == code_fingerprint(REPO), (
        f"README's tables record code fingerprint {recorded}, the checkout is {code_fingerprint(REPO)}: "
        "regenerate them with a run of this code"
    )


def test_the_accuracy_page_comes_from_the_same_run_as_the_readme():
    """docs/results.md (written whole by update_readme beside the README block) records the same code."""
    page = REPO / "docs" / "results.md"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_fingerprint(page.read_text(encoding="utf-8")) == readme_fingerprint(readme)
