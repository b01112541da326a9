"""torchrun command lines for one node or a multi-node SLURM allocation.

Inside an allocation (``SLURM_JOB_ID`` set) with several nodes, one ``srun`` task per node starts a
``torchrun`` that spawns one worker per GPU; the workers meet at a c10d rendezvous on the first node of
``SLURM_JOB_NODELIST`` (expanded here in pure Python, as ``scontrol show hostnames`` would). On one node
``torchrun --standalone`` suffices.

    python -m rhocluster.training.launch [--gpus-per-node N] [--dry-run] -- -m rhocluster.training.jobs SPEC
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

DEFAULT_PORT = 29500


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in hostlist {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise ValueError(f"unbalanced '[' in hostlist {text!r}")
    parts.append("".join(current))
    return [p for p in parts if p]


def _expand_range(spec: str, hostlist: str) -> list[str]:
    """``"01-03,7"`` -> ``["01", "02", "03", "7"]`` (zero padding kept, as SLURM does)."""
    out = []
    for item in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
        if not m:
            raise ValueError(f"bad range {item!r} in hostlist {hostlist!r}")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise ValueError(f"descending range {item!r} in hostlist {hostlist!r}")
        width = len(lo)
        out += [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    return out


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a SLURM hostlist (``"gpu[001-003,010],login-[1-2]x[a]"``) into host names, in order.

    Several bracket groups in one name give their cartesian product, like ``scontrol show hostnames``.
    """
    hosts: list[str] = []
    for part in _split_top_level(hostlist.strip()):
        pieces = re.split(r"\[([^\]]*)\]", part)
        choices = [[p] if i % 2 == 0 else _expand_range(p, hostlist) for i, p in enumerate(pieces)]
        hosts += ["".join(combo) for combo in itertools.product(*choices)]
    return hosts


def _count_gpus(env: Mapping[str, str]) -> int | None:
    """GPUs per node from SLURM's variables (``SLURM_GPUS_ON_NODE``, ``SLURM_GPUS_PER_NODE`` like
    ``"4"``, ``"a100:4"`` or ``"gpu:a100:4(x2)"``, ``SLURM_JOB_GPUS``) or ``CUDA_VISIBLE_DEVICES``."""
    if env.get("SLURM_GPUS_ON_NODE", "").isdigit():
        return int(env["SLURM_GPUS_ON_NODE"])
    per_node = env.get("SLURM_GPUS_PER_NODE", "")
    if per_node:
        m = re.search(r"(\d+)(\(x\d+\))?$", per_node.split(",")[0])
        if m:
            return int(m.group(1))
    for key in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = env.get(key, "").strip()
        if value and value != "NoDevFiles":
            return len([v for v in value.split(",") if v])
    return None


@dataclass(frozen=True)
class LaunchPlan:
    """Where and how many training processes to start."""

    hosts: tuple[str, ...]  # nodes of the job, first one hosts the rendezvous
    nproc_per_node: int
    port: int
    job_id: str | None
    gpus_per_node: int = 0  # GPUs the per-node srun task must hold (0: CPU processes)
    cpus_per_node: int | None = None  # CPUs of the per-node task (all of the node's allocation)

    @property
    def nnodes(self) -> int:
        return len(self.hosts)

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def rdzv_endpoint(self) -> str:
        return f"{self.hosts[0]}:{self.port}"

    def torchrun_args(self, program: Sequence[str], python: str = sys.executable) -> list[str]:
        """One node's ``torchrun`` (all nodes run the same line; the c10d rendezvous assigns ranks)."""
        cmd = [python, "-m", "torch.distributed.run", f"--nproc-per-node={self.nproc_per_node}"]
        if self.nnodes == 1:
            cmd += ["--standalone", "--nnodes=1"]
        else:
            cmd += [
                f"--nnodes={self.nnodes}",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={self.rdzv_endpoint}",
                f"--rdzv-id={self.job_id or 'rhocluster'}",
                "--max-restarts=0",
            ]
        return cmd + list(program)

    def command(self, program: Sequence[str], python: str = sys.executable) -> list[str]:
        """The full command: ``srun`` with one task per node around ``torchrun`` when several nodes."""
        inner = self.torchrun_args(program, python)
        if self.nnodes == 1:
            return inner
        # One task per node holds the node's GPUs and CPUs for its torchrun and workers; --overlap lets
        # it run when the rule's own script is already a step of the allocation.
        resources = [f"--gres=gpu:{self.gpus_per_node}"] if self.gpus_per_node else []
        if self.cpus_per_node:
            resources.append(f"--cpus-per-task={self.cpus_per_node}")
        return [
            "srun",
            f"--nodes={self.nnodes}",
            f"--ntasks={self.nnodes}",
            "--ntasks-per-node=1",
            *resources,
            "--kill-on-bad-exit=1",
            "--overlap",
            *inner,
        ]


def plan_from_env(
    env: Mapping[str, str] | None = None, gpus_per_node: int | None = None, port: int | None = None
) -> LaunchPlan:
    """The launch plan for this process' environment: the SLURM allocation when ``SLURM_JOB_ID`` is set,
    else this host. ``gpus_per_node`` overrides detection; without GPUs one CPU process is planned.
    The rendezvous port defaults to a job-dependent port so that jobs sharing a first node do not clash.
    """
    env = os.environ if env is None else env
    job_id = env.get("SLURM_JOB_ID")
    if job_id:
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not nodelist:
            raise ValueError("SLURM_JOB_ID is set but SLURM_JOB_NODELIST is not")
        hosts = tuple(expand_hostlist(nodelist))
        nnodes = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
        if nnodes is not None and int(nnodes) != len(hosts):
            raise ValueError(f"SLURM_NNODES={nnodes} but SLURM_JOB_NODELIST={nodelist!r} names {len(hosts)} hosts")
    else:
        hosts = ("localhost",)
    gpus = gpus_per_node if gpus_per_node is not None else _count_gpus(env)
    if port is None:
        port = DEFAULT_PORT + int(job_id) % 10000 if job_id and job_id.isdigit() else DEFAULT_PORT
    cpus = env.get("SLURM_CPUS_ON_NODE", "")
    return LaunchPlan(
        hosts=hosts,
        nproc_per_node=max(1, gpus or 0),
        port=port,
        job_id=job_id,
        gpus_per_node=gpus or 0,
        cpus_per_node=int(cpus) if cpus.isdigit() else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print (``--dry-run``) or run the launch command for the program after ``--``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    program = argv[argv.index("--") + 1 :] if "--" in argv else []
    options = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m rhocluster.training.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus-per-node", type=int, default=None, help="processes per node (default: detected)")
    parser.add_argument("--port", type=int, default=None, help="rendezvous port on the first node")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(options)
    if not program:
        parser.error("give the python program after --, e.g. -- -m rhocluster.training.jobs spec.json")
    cmd = plan_from_env(gpus_per_node=args.gpus_per_node, port=args.port).command(program)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
