"""Checks that run once the DAG is built and before any job starts or is submitted (``onstart``).

Each check returns a list of problems (empty when fine), every one naming what to set. The workflow
collects them and stops with all of them at once, so a misconfigured cluster run fails in seconds at
the submit host rather than hours later in a queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# Environment variables profiles/slurm/config.yaml reads into default-resources and set-resources.
ACCOUNT_ENV = "RHO_SLURM_ACCOUNT"
PARTITION_ENV = "RHO_SLURM_PARTITION"
GPU_PARTITION_ENV = "RHO_SLURM_GPU_PARTITION"


@dataclass(frozen=True)
class PendingJob:
    """What the checks need of a job that is about to run: its rule, whether it runs on the submit host
    (``localrule``) and its evaluated resources."""

    rule: str
    local: bool
    resources: Mapping[str, Any] = field(default_factory=dict)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def slurm_gpus(resources: Mapping[str, Any]) -> int:
    """GPUs per node the slurm executor asks sbatch for: ``gpu`` (``--gpus``) or ``gres``
    (``--gres=gpu[:type]:N``). The ``gpus`` resource is not submitted; the job step and the
    training launcher read it."""
    counts = [_int(resources.get("gpu"))]
    for item in str(resources.get("gres") or "").split(","):
        m = re.fullmatch(r"gpu(?::[A-Za-z_][A-Za-z0-9_.-]*)?(?::(\d+))?", item.strip())
        if m:
            counts.append(int(m.group(1) or 1))
    return max(counts)


def gpu_count(resources: Mapping[str, Any]) -> int:
    """GPUs per node a job uses, from any of ``gpus``, ``gpu`` or ``gres``."""
    return max(_int(resources.get("gpus")), slurm_gpus(resources))


def _rules(names: Iterable[str], shown: int = 6) -> str:
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _unset(value: Any) -> bool:
    """A resource is unset when absent, empty, or an environment variable that was never exported."""
    return value is None or str(value).strip() == "" or "$" in str(value)


def check_slurm(jobs: Iterable[PendingJob], gpu_partition: str | None = None) -> list[str]:
    """Problems of the jobs SLURM would run: account or partition unset; a job asking for GPUs on a
    partition other than ``gpu_partition`` ($RHO_SLURM_GPU_PARTITION, where set); a job whose ``gpus``
    exceed the GPUs its gres (or gpu) asks SLURM for."""
    missing: dict[str, set[str]] = {"slurm_account": set(), "slurm_partition": set()}
    elsewhere: dict[str, str] = {}
    step_more: dict[str, tuple[int, int]] = {}
    for job in jobs:
        if job.local:
            continue
        for key in missing:
            if _unset(job.resources.get(key)):
                missing[key].add(job.rule)
        n, used = slurm_gpus(job.resources), _int(job.resources.get("gpus"))
        partition = job.resources.get("slurm_partition")
        if n and gpu_partition and not _unset(partition) and partition != gpu_partition:
            elsewhere[job.rule] = str(partition)
        if n and used > n:
            step_more[job.rule] = (used, n)
    problems = []
    if missing["slurm_account"]:
        problems.append(
            f"no SLURM account for rule(s) {_rules(missing['slurm_account'])}: export "
            f"{ACCOUNT_ENV}=<account> (profiles/slurm reads it into default-resources slurm_account) "
            "or pass --default-resources slurm_account=<account>"
        )
    if missing["slurm_partition"]:
        problems.append(
            f"no SLURM partition for rule(s) {_rules(missing['slurm_partition'])}: export "
            f"{PARTITION_ENV}=<partition> for CPU jobs and {GPU_PARTITION_ENV}=<partition> for GPU jobs "
            "(both may name the same partition), or set slurm_partition in the profile"
        )
    if elsewhere:
        listed = _rules(f"{r} (partition {p})" for r, p in elsewhere.items())
        problems.append(
            f"rule(s) {listed} ask for GPUs (the config's resources.<rule>.gpus) outside the GPU partition "
            f"{GPU_PARTITION_ENV}={gpu_partition}: add them to profiles/slurm's set-resources with "
            f"slurm_partition: ${GPU_PARTITION_ENV}, or set their gpus to 0"
        )
    if step_more:
        listed = _rules(f"{r} (gpus={u}, gres/gpu={n})" for r, (u, n) in step_more.items())
        problems.append(
            f"rule(s) {listed} would use more GPUs per node than SLURM allocates: make the config's "
            "resources.<rule>.gpus and gres agree"
        )
    return problems


def check_local_gpus(jobs: Iterable[PendingJob], visible_gpus: int) -> list[str]:
    """Problems of jobs run without SLURM that ask for GPUs (the config's ``resources.<rule>.gpus``):
    none on a machine with no CUDA GPU, or more than the machine has."""
    wanting = {job.rule: gpu_count(job.resources) for job in jobs if gpu_count(job.resources)}
    if wanting and visible_gpus == 0:
        return [
            f"rule(s) {_rules(wanting)} ask for GPUs (resources.<rule>.gpus in the config) but this machine "
            "has no CUDA GPU: run on the cluster with --profile profiles/slurm, or set their "
            "resources.<rule>.gpus: 0 to run on CPU (config/rho1-smoke.yaml does)"
        ]
    more = {rule: n for rule, n in wanting.items() if n > visible_gpus}
    if more:
        listed = _rules(f"{r} ({n})" for r, n in more.items())
        return [
            f"rule(s) {listed} ask for more GPUs than the {visible_gpus} this machine has: run on the cluster "
            "with --profile profiles/slurm, or lower resources.<rule>.gpus in the config"
        ]
    return []


def check_devices(jobs: Iterable[PendingJob], config: Mapping[str, Any]) -> list[str]:
    """Device settings of the config against its own job sizes: evaluation on ``cuda`` (or vLLM)
    without GPUs for rule evaluate, GPUs for evaluate where evaluation.device is cpu, bf16 training
    without GPUs."""
    gpus: dict[str, int] = {}
    for job in jobs:
        gpus[job.rule] = max(gpus.get(job.rule, 0), gpu_count(job.resources))
    problems = []
    evaluation = config.get("evaluation", {})
    if "evaluate" in gpus:
        n, device, backend = gpus["evaluate"], str(evaluation.get("device", "cpu")), evaluation.get("backend", "hf")
        wanted = int(evaluation.get("vllm", {}).get("tensor_parallel_size", 1))
        if backend == "vllm" and n < wanted:
            problems.append(
                f"evaluation.backend is vllm (tensor_parallel_size {wanted}) but resources.evaluate.gpus is {n}: "
                f"set resources.evaluate.gpus: {wanted}, or evaluation.backend: hf with device: cpu"
            )
        elif backend == "hf" and device.startswith("cuda") and not n:
            problems.append(
                f"evaluation.device is {device} but resources.evaluate.gpus is 0: set resources.evaluate.gpus: 1, "
                "or evaluation.device: cpu"
            )
        elif backend == "hf" and device == "cpu" and n:
            problems.append(
                f"resources.evaluate.gpus is {n} but evaluation.device is cpu (the GPUs would sit idle): set "
                "evaluation.device: cuda, or resources.evaluate.gpus: 0"
            )
    for rule, section in (("pretrain_base", "base"), ("train_reference", "reference"), ("train_cpt", "cpt")):
        training = config.get(section, {}).get("training", {})
        if rule in gpus and training.get("bf16") and not gpus[rule]:
            problems.append(
                f"{section}.training.bf16 is true (GPU training) but resources.{rule}.gpus is 0: set "
                f"resources.{rule}.gpus, or {section}.training.bf16: false to train on CPU"
            )
    return problems


def training_processes(resources: Mapping[str, Any]) -> int:
    """Processes a training job runs (``rhocluster.training.launch``): one per GPU of each node, or one
    per node without GPUs."""
    return max(1, _int(resources.get("nodes"))) * max(1, gpu_count(resources))


def check_model_parallel(jobs: Iterable[PendingJob], training: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Training jobs whose processes ``tensor_parallel x pipeline_parallel`` does not divide (the rest
    of the processes is data parallelism); ``training`` maps a rule to its training config."""
    jobs = list(jobs)
    problems = []
    for rule, cfg in training.items():
        tp, pp = int(cfg.get("tensor_parallel", 1)), int(cfg.get("pipeline_parallel", 1))
        counts = sorted({training_processes(j.resources) for j in jobs if j.rule == rule})
        bad = [n for n in counts if n % (tp * pp)]
        if bad:
            problems.append(
                f"rule {rule}: training.tensor_parallel={tp} x pipeline_parallel={pp} does not divide its "
                f"{bad[0]} process(es) (GPUs per node x nodes, one per node without GPUs); change the "
                f"parallel sizes or resources.{rule}.gpus/nodes in the config"
            )
    return problems
