"""torchrun / srun command lines built from (fake) SLURM environments."""

from __future__ import annotations

import shlex

import pytest

from rhocluster.training.launch import DEFAULT_PORT, expand_hostlist, main, plan_from_env

PY = "/venv/bin/python"


@pytest.mark.parametrize(
    "hostlist, hosts",
    [
        ("node17", ["node17"]),
        ("gpu[001-003,010]", ["gpu001", "gpu002", "gpu003", "gpu010"]),
        ("a[8-11],b7", ["a8", "a9", "a10", "a11", "b7"]),
        ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
        ("x-[9],login-dev", ["x-9", "login-dev"]),
    ],
)
def test_expand_hostlist(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


@pytest.mark.parametrize("bad", ["gpu[1-3", "gpu1-3]", "gpu[a-b]", "gpu[5-2]"])
def test_expand_hostlist_rejects_malformed(bad):
    with pytest.raises(ValueError, match="hostlist"):
        expand_hostlist(bad)


def slurm(**extra: str) -> dict[str, str]:
    return {"SLURM_JOB_ID": "123456", "SLURM_JOB_NODELIST": "gpu[007-008,012]", "SLURM_NNODES": "3", **extra}


def test_multi_node_plan_and_command():
    plan = plan_from_env(slurm(SLURM_GPUS_ON_NODE="8", SLURM_CPUS_ON_NODE="96"))
    assert plan.hosts == ("gpu007", "gpu008", "gpu012")
    assert (plan.nnodes, plan.nproc_per_node, plan.world_size) == (3, 8, 24)
    assert plan.port == DEFAULT_PORT + 3456  # job-dependent, so jobs sharing a first node do not clash
    assert plan.rdzv_endpoint == "gpu007:32956"
    cmd = plan.command(["-m", "rhocluster.training.jobs", "spec.json"], python=PY)
    assert cmd == [
        "srun", "--nodes=3", "--ntasks=3", "--ntasks-per-node=1", "--gres=gpu:8", "--cpus-per-task=96",
        "--kill-on-bad-exit=1", "--overlap",
        PY, "-m", "torch.distributed.run", "--nproc-per-node=8", "--nnodes=3", "--rdzv-backend=c10d",
        "--rdzv-endpoint=gpu007:32956", "--rdzv-id=123456", "--max-restarts=0",
        "-m", "rhocluster.training.jobs", "spec.json",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "env, gpus",
    [
        ({"SLURM_GPUS_ON_NODE": "4"}, 4),
        ({"SLURM_GPUS_PER_NODE": "a100:2"}, 2),
        ({"SLURM_GPUS_PER_NODE": "gpu:h100:8(x3)"}, 8),
        ({"SLURM_GPUS_PER_NODE": "6"}, 6),
        ({"SLURM_JOB_GPUS": "0,1,2"}, 3),
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, 2),
        ({}, 1),  # no GPUs: one (CPU) process per node
    ],
)
def test_gpus_per_node_detection(env, gpus):
    assert plan_from_env(slurm(**env)).nproc_per_node == gpus
    assert plan_from_env(slurm(**{"SLURM_GPUS_ON_NODE": "4", **env}), gpus_per_node=5).nproc_per_node == 5


def test_single_node_is_standalone():
    plan = plan_from_env({"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "gpu3", "SLURM_NNODES": "1"}, gpus_per_node=4)
    assert plan.command(["train.py"], python=PY) == [
        PY, "-m", "torch.distributed.run", "--nproc-per-node=4", "--standalone", "--nnodes=1", "train.py"
    ]  # fmt: skip
    outside = plan_from_env({}, gpus_per_node=2)
    assert outside.hosts == ("localhost",) and outside.port == DEFAULT_PORT and outside.world_size == 2
    assert plan_from_env({}).world_size == 1
    cpu_nodes = plan_from_env(slurm()).command(["train.py"], python=PY)  # no GPUs: one gloo process per node
    assert "--nproc-per-node=1" in cpu_nodes and not any(a.startswith("--gres") for a in cpu_nodes)


def test_inconsistent_slurm_environment_is_refused():
    with pytest.raises(ValueError, match="SLURM_NNODES=2 but .* names 3 hosts"):
        plan_from_env(slurm(SLURM_NNODES="2"))
    with pytest.raises(ValueError, match="SLURM_JOB_NODELIST is not"):
        plan_from_env({"SLURM_JOB_ID": "5"})


def test_cli_dry_run(monkeypatch, capsys):
    for key, value in slurm(SLURM_GPUS_ON_NODE="4").items():
        monkeypatch.setenv(key, value)
    assert main(["--dry-run", "--port", "4000", "--", "-m", "rhocluster.training.jobs", "s.json"]) == 0
    cmd = shlex.split(capsys.readouterr().out)
    assert cmd[:2] == ["srun", "--nodes=3"]
    assert "--rdzv-endpoint=gpu007:4000" in cmd and "--nproc-per-node=4" in cmd
    assert cmd[-3:] == ["-m", "rhocluster.training.jobs", "s.json"]
    with pytest.raises(SystemExit):
        main(["--dry-run"])
