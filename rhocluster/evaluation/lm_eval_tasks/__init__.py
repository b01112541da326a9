"""lm-eval task configs for Rho-1's nine math benchmarks (``--include_path`` this folder)."""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
SUITE_GROUP = "rho1_suite"


def task_name(benchmark: str) -> str:
    """lm-eval task name of a benchmark: ``rho1_<benchmark>``."""
    return f"rho1_{benchmark}"
