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
        (lambda c: c["selection"].__setitem__("budget", "sixty"), "budget"),
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


@pytest.mark.parametrize(
    "where",
    [
        lambda c: c["base"]["hub"],
        lambda c: c["data"]["web"],
        lambda c: c["data"]["hq"]["datasets"][0],
    ],
    ids=["base.hub", "data.web", "data.hq.datasets"],
)
def test_unknown_key_in_a_hub_source_of_the_real_config_is_named(where):
    """Every hub source of the real config refuses unknown keys (a typo must not be ignored)."""
    from pathlib import Path

    import yaml
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    repo = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((repo / "config" / "rho1-tinyllama.yaml").read_text())
    validate(cfg, str(repo / "config" / "schema.yaml"))  # as shipped: valid
    where(cfg)["revison"] = "abc"
    with pytest.raises(WorkflowError, match="revison"):
        validate(cfg, str(repo / "config" / "schema.yaml"))


def test_a_renamed_training_key_names_its_new_name():
    """One name per concept: the trainer's selection fraction is `budget` (as selection.budget) and the
    kind of token selection `tokens` (as the variant table); the old names are refused with the new."""
    import pytest

    from rhocluster.training.config import TrainConfig

    base = {"steps": 1, "global_batch": 1, "micro_batch": 1, "lr": 1e-3}
    assert TrainConfig.from_dict({**base, "tokens": "slm", "budget": 0.5}).budget == 0.5
    with pytest.raises(ValueError, match="training.slm_ratio is now called training.budget"):
        TrainConfig.from_dict({**base, "slm_ratio": 0.5})
    with pytest.raises(ValueError, match="training.selection is now called training.tokens"):
        TrainConfig.from_dict({**base, "selection": "slm"})
