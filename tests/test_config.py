"""Config validation: the workflow checks config/config.yaml against config/schema.yaml at start."""

from __future__ import annotations

import pytest
from tests.conftest import change_config, copy_workflow, run_snakemake


def test_default_config_is_valid_and_dry_runs(tmp_path):
    proc = run_snakemake(copy_workflow(tmp_path / "wf"), "-n", "-q", timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:]


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["selection"].__setitem__("ratio", "sixty"), "ratio"),
        (lambda c: c["clustering"].__setitem__("n_levels", 3), "n_levels"),
        (lambda c: c["model"].pop("hidden_size"), "hidden_size"),
    ],
    ids=["wrong-type", "unknown-key", "missing-value"],
)
def test_bad_config_fails_naming_the_key(tmp_path, edit, key):
    work = copy_workflow(tmp_path / "wf")
    change_config(work, edit)
    proc = run_snakemake(work, "-n", timeout=120)
    assert proc.returncode != 0
    assert key in proc.stdout and "schema" in proc.stdout.lower()
