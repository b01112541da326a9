"""Checks that run once the DAG is built and before any job starts or is submitted (``onstart``).

Each check returns a list of problems (empty when fine), every one naming what to set. The workflow
collects them and stops with all of them at once, so a misconfigured cluster run fails in seconds at
the submit host rather than hours later in a queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# Environment variables profiles/slurm*/config.yaml read into default-resources.
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


def check_slurm(jobs: Iterable[PendingJob], gpu_rules: bool, gpu_rule_names: set[str]) -> list[str]:
    """Problems of the jobs SLURM would run: account or partition unset; GPUs requested by a CPU config,
    or a GPU rule of a GPU config without GPUs."""
    missing: dict[str, set[str]] = {"slurm_account": set(), "slurm_partition": set()}
    cpu_config_gpu: dict[str, int] = {}
    gpu_without: set[str] = set()
    step_more: dict[str, tuple[int, int]] = {}
    for job in jobs:
        if job.local:
            continue
        for key in missing:
            if _unset(job.resources.get(key)):
                missing[key].add(job.rule)
        n, used = slurm_gpus(job.resources), _int(job.resources.get("gpus"))
        if n and not gpu_rules:
            cpu_config_gpu[job.rule] = n
        if gpu_rules and job.rule in gpu_rule_names and not n:
            gpu_without.add(job.rule)
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
    if cpu_config_gpu:
        listed = _rules(f"{r} ({n})" for r, n in cpu_config_gpu.items())
        problems.append(
            f"the config runs on CPU (resources.gpu_rules: false) but GPUs are requested for rule(s) {listed}: "
            "use --profile profiles/slurm-cpu for CPU configs such as the tiny default, or set "
            "resources.gpu_rules: true in a config meant for GPUs"
        )
    if gpu_without:
        problems.append(
            f"the config needs GPUs (resources.gpu_rules: true) but rule(s) {_rules(gpu_without)} "
            "request none: use --profile profiles/slurm (set-resources gres/gpus), or set "
            "resources.gpu_rules: false to run them on CPU"
        )
    if step_more:
        listed = _rules(f"{r} (gpus={u}, gres/gpu={n})" for r, (u, n) in step_more.items())
        problems.append(
            f"rule(s) {listed} would use more GPUs per node than SLURM allocates: make the profile's "
            "gpus and gres (or gpu) agree"
        )
    return problems


def check_local_gpus(
    jobs: Iterable[PendingJob], gpu_rules: bool, gpu_rule_names: set[str], visible_gpus: int
) -> list[str]:
    """Problems of a GPU config (``resources.gpu_rules: true``) run without SLURM: a GPU rule pending
    on a machine with no CUDA GPU, or a job asking for more GPUs than the machine has."""
    if not gpu_rules:
        return []
    pending = [job for job in jobs if job.rule in gpu_rule_names]
    if pending and visible_gpus == 0:
        return [
            f"the config needs GPUs (resources.gpu_rules: true) for rule(s) {_rules({j.rule for j in pending})} "
            "but this machine has no CUDA GPU: run on the cluster with --profile profiles/slurm, or set "
            "resources.gpu_rules: false to run on CPU"
        ]
    wanting = {job.rule: gpu_count(job.resources) for job in pending if gpu_count(job.resources) > visible_gpus}
    if wanting:
        listed = _rules(f"{r} ({n})" for r, n in wanting.items())
        return [
            f"rule(s) {listed} ask for more GPUs than the {visible_gpus} this machine has: run on the cluster "
            "with --profile profiles/slurm, or lower the rules' gpus with --set-resources"
        ]
    return []


def training_processes(resources: Mapping[str, Any], gpu_rules: bool) -> int:
    """Processes a training job runs (``rhocluster.training.launch``): one per GPU of each node, or one
    per node without GPUs."""
    nodes = max(1, _int(resources.get("nodes")))
    return nodes * (max(1, gpu_count(resources)) if gpu_rules else 1)


def check_model_parallel(
    jobs: Iterable[PendingJob], training: Mapping[str, Mapping[str, Any]], gpu_rules: bool
) -> list[str]:
    """Training jobs whose processes ``tensor_parallel x pipeline_parallel`` does not divide (the rest
    of the processes is data parallelism); ``training`` maps a rule to its training config."""
    problems = []
    for rule, cfg in training.items():
        tp, pp = int(cfg.get("tensor_parallel", 1)), int(cfg.get("pipeline_parallel", 1))
        counts = sorted({training_processes(j.resources, gpu_rules) for j in jobs if j.rule == rule})
        bad = [n for n in counts if n % (tp * pp)]
        if bad:
            problems.append(
                f"rule {rule}: training.tensor_parallel={tp} x pipeline_parallel={pp} does not divide its "
                f"{bad[0]} process(es) ({'GPUs x nodes' if gpu_rules else 'one per node without GPUs'}); "
                "change the parallel sizes or the rule's gpus/nodes (--set-resources)"
            )
    return problems


def gpu_rules_of(config: Mapping[str, Any]) -> set[str]:
    """Rules that need a GPU in this config: training, the reference/base forward passes, the held-out
    loss, clustering, evaluation; importing an HF base model is CPU work."""
    rules = {"train_reference", "train_cpt", "evaluate", "score_reference", "score_base", "embed_sample", "score_heldout"}
    rules |= {"assign", "cluster_level"}
    if config.get("base", {}).get("source", "pretrain") == "pretrain":
        rules.add("pretrain_base")
    return rules
