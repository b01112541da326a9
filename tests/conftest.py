"""Shared fixtures: one real run of the tiny default workflow per test session.

The run happens in a copy of the workflow files inside a temporary directory, so tests never touch
the developer's ``results/`` or README. Set ``RHOCLUSTER_TINY_RUN`` to a directory holding a finished
run (e.g. the repository root after ``make run``) to reuse it instead of running again.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# What a workflow run needs besides the installed package.
WORKFLOW_FILES = ["Snakefile", "rules", "scripts", "config", "envs", "report", "profiles", "README.md"]


def snakemake_bin() -> str:
    """The snakemake executable of the interpreter running the tests."""
    exe = Path(sys.executable).parent / "snakemake"
    return str(exe) if exe.exists() else "snakemake"


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow files (not results, logs or benchmarks) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` and return the completed process (stdout and stderr merged)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [snakemake_bin(), *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def change_config(workdir: Path, edit) -> None:
    """Apply ``edit`` to the workflow's ``config/config.yaml`` in ``workdir``."""
    path = workdir / "config/config.yaml"
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A directory holding a finished run of the tiny default workflow (``results/tiny``)."""
    reuse = os.environ.get("RHOCLUSTER_TINY_RUN")
    if reuse:
        path = Path(reuse)
        if not (path / "results/tiny/tables/readme.done").exists():
            pytest.fail(f"RHOCLUSTER_TINY_RUN={reuse} holds no finished tiny run")
        return path
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny_run"))
    start = time.perf_counter()
    proc = run_snakemake(workdir, "--cores", "all")
    if proc.returncode != 0:
        pytest.fail(f"tiny workflow failed (rc={proc.returncode}):\n{proc.stdout[-8000:]}")
    print(f"tiny workflow finished in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return workdir


# --- the fast tier (make test-fast: pytest -m "not slow") ---------------------------------------------
# A test is slow when it runs Snakemake, torchrun or a training loop. Rather than trusting every author
# to remember the marker, collection marks a test slow when its own source calls one of these or it
# uses a fixture that does; test modules that train in most tests carry `pytestmark = slow` themselves.
SLOW_CALLS = (
    "run_snakemake(",
    "dry_run(",
    "planned_jobs(",
    "planned(",
    "torch.distributed.run",
    "run_training(",
    "launch_training(",
    "train(",
)
SLOW_FIXTURES = {"tiny_run", "rerun_dir", "workdir"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        fn = getattr(item, "function", None)
        if fn is None or item.get_closest_marker("slow"):
            continue
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            continue
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or any(call in source for call in SLOW_CALLS):
            item.add_marker(pytest.mark.slow)
        elif any(_fixture_is_slow(defs) for defs in item._fixtureinfo.name2fixturedefs.values()):
            item.add_marker(pytest.mark.slow)  # e.g. a module fixture that runs a workflow


def _fixture_is_slow(defs) -> bool:
    """Whether a fixture's own source runs a workflow or torchrun (e.g. a module-scoped smoke run);
    not every SLOW_CALLS entry: a fixture training a tokenizer is fast."""
    for fixturedef in defs:
        try:
            source = inspect.getsource(fixturedef.func)
        except (OSError, TypeError):
            continue
        if any(call in source for call in ("run_snakemake(", "torch.distributed.run", "launch_training(")):
            return True
    return False
