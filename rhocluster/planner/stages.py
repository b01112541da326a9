"""The plan's data: stages (jobs per rule, compute, disk) and how the DAG's jobs group into them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

# The stage of rules that the stage table does not know: listed, not costed.
OTHER = "other (no cost model)"
OTHER_NOTE = "rules missing from rhocluster.planner.costs.STAGES: their costs are not counted"


@dataclass
class Stage:
    """One stage of the DAG: its jobs per rule, compute and the disk it leaves behind."""

    name: str
    jobs: dict[str, int]
    gpu: bool = False  # runs on GPUs where the config gives its rules gpus (resources.<rule>.gpus)
    flops: float = 0.0
    gpu_hours: float = 0.0
    disk_bytes: float = 0.0
    memory_bytes: float = 0.0  # peak host memory of one job, where it is the binding constraint
    note: str = ""
    wall_hours: float | None = None  # per job, with the config's GPUs per job


@dataclass(frozen=True)
class StageSpec:
    """A row of the stage table: the stage's rules and the cost model that fills in its compute and disk
    (``cost(model, stage)``, None for stages without costs)."""

    name: str
    rules: tuple[str, ...]
    gpu: bool = False
    cost: Callable[[Any, Stage], None] | None = None
    note: str = ""


@dataclass
class Plan:
    """The whole plan: inputs (model size, tokens and where they came from), assumptions, stages."""

    run: str
    parameters: int
    tokens: dict[str, float]
    token_sources: dict[str, str]
    assumptions: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)

    @property
    def total_gpu_hours(self) -> float:
        return sum(s.gpu_hours for s in self.stages)

    @property
    def total_disk_bytes(self) -> float:
        return sum(s.disk_bytes for s in self.stages)

    @property
    def total_jobs(self) -> int:
        return sum(sum(s.jobs.values()) for s in self.stages)

    def jobs_per_rule(self) -> dict[str, int]:
        """Jobs per rule over every stage."""
        out: dict[str, int] = {}
        for s in self.stages:
            for rule, n in s.jobs.items():
                out[rule] = out.get(rule, 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data, totals included."""
        return {
            **asdict(self),
            "total_gpu_hours": self.total_gpu_hours,
            "total_disk_bytes": self.total_disk_bytes,
            "total_jobs": self.total_jobs,
            "jobs_per_rule": self.jobs_per_rule(),
        }


def group_jobs(jobs: dict[str, int], table: Sequence[StageSpec]) -> list[tuple[StageSpec, dict[str, int]]]:
    """The DAG's jobs per stage in the table's order, leaving out stages without jobs; rules the table
    does not know form a last stage, ``OTHER``, so that no job of the DAG goes unlisted."""
    known = {rule for spec in table for rule in spec.rules}
    grouped = []
    for spec in table:
        stage_jobs = {rule: jobs[rule] for rule in spec.rules if jobs.get(rule)}
        if stage_jobs:
            grouped.append((spec, stage_jobs))
    unknown = {rule: n for rule, n in jobs.items() if rule not in known and n}
    if unknown:
        grouped.append((StageSpec(OTHER, tuple(unknown), note=OTHER_NOTE), unknown))
    return grouped
