"""Running on SLURM: job sizes from the config, the one site profile, the checks that stop a
misconfigured run before anything is submitted, and (marked integration, excluded by default) the real
config with the smoke override through a real one-node SLURM cluster started on this machine.

    pytest -m integration tests/test_slurm.py     # needs root and apt (installs slurm-wlm and munge)
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rhocluster.workflow.preflight import (
    PendingJob,
    check_devices,
    check_local_gpus,
    check_model_parallel,
    check_slurm,
    gpu_count,
)
from rhocluster.workflow.sizes import job_size
from tests.conftest import REPO, change_config, copy_workflow, run_snakemake

PROFILE = REPO / "profiles/slurm"
SLURM_ENV = ("RHO_SLURM_ACCOUNT", "RHO_SLURM_PARTITION", "RHO_SLURM_GPU_PARTITION")
REAL = yaml.safe_load((REPO / "config/rho1-tinyllama.yaml").read_text())
SMOKE_FILES = ("config/rho1-tinyllama.yaml", "config/rho1-smoke.yaml")
# The rules that can use GPUs: the profile sends them to the GPU partition.
GPU_CAPABLE = {"train_reference", "train_cpt", "score_reference", "score_base", "embed_sample", "assign",
               "cluster_level", "evaluate", "score_heldout"}


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


# --- job sizes: the config's ---------------------------------------------------------------------


def test_job_size_is_the_rules_own_overridden_by_the_config():
    defaults = {"threads": 1, "mem_mb": 8000, "runtime": 60, "gpus": 0}
    assert job_size({}, "train_cpt", defaults) == defaults  # the tiny default: the rule's own sizes
    real = job_size(REAL["resources"], "train_cpt", defaults)
    assert real == {"threads": 12, "mem_mb": 480000, "runtime": 1440, "gpus": 8, "gres": "gpu:8", "nodes": 2,
                    "mpi": "srun", "tasks_per_node": 8, "cpus_per_task": 12}
    # a null drops the key; the smoke resets the real config's GPUs, nodes and srun launch
    smoke = {"train_cpt": {**REAL["resources"]["train_cpt"], "gpus": 0, "nodes": 1, "mpi": None,
                           "tasks_per_node": None, "cpus_per_task": None, "threads": 1}}
    assert job_size(smoke, "train_cpt", defaults) == {**defaults, "mem_mb": 480000, "runtime": 1440, "nodes": 1}
    assert job_size({"evaluate": {"gpus": 1, "gres": "gpu:h100:1"}}, "evaluate", defaults)["gres"] == "gpu:h100:1"


def test_the_schema_refuses_the_old_keys_naming_the_new_ones():
    for old, new in (({"resources": {"gpu_rules": True}}, "resources.<rule>.gpus"),
                     ({"plan": {"profile": "profiles/slurm"}}, "resources.<rule>.gpus")):
        cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
        for key, value in old.items():
            cfg[key] = {**cfg.get(key, {}), **value}
        with pytest.raises(WorkflowError, match=re.escape(new)):
            validate(cfg, str(REPO / "config/schema.yaml"))
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["resources"] = {"train_cpt": {"gpu": 8}}  # a size the schema does not know
    with pytest.raises(WorkflowError, match="gpu"):
        validate(cfg, str(REPO / "config/schema.yaml"))


def planned(work: Path, env: dict[str, str], *args: str) -> dict[str, dict[str, str]]:
    """Resources of the first job of every rule in a dry run (``snakemake -n``) of the workflow in ``work``."""
    proc = run_in(work, env, "-n", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    sizes: dict[str, dict[str, str]] = {}
    rule = None
    for line in proc.stdout.splitlines():
        m = re.match(r"(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:") and rule not in sizes:
            sizes[rule] = dict(item.split("=", 1) for item in line.split(":", 1)[1].strip().split(", "))
    return sizes


def test_a_dry_run_shows_the_configs_job_sizes_and_the_profiles_partitions(tmp_path):
    env = {**os.environ, "RHO_SLURM_ACCOUNT": "acct", "RHO_SLURM_PARTITION": "cpu", "RHO_SLURM_GPU_PARTITION": "gpu"}
    work = copy_workflow(tmp_path / "wf")
    real = planned(work, env, "--profile", "profiles/slurm", "--configfile", "config/rho1-tinyllama.yaml")
    cpt = real["train_cpt"]
    assert (cpt["nodes"], cpt["gpus"], cpt["gres"], cpt["mpi"]) == ("2", "8", "gpu:8", "srun")
    assert (cpt["tasks_per_node"], cpt["cpus_per_task"], cpt["mem_mb"]) == ("8", "12", "480000")
    assert (real["train_reference"]["nodes"], real["train_reference"]["gres"]) == ("1", "gpu:8")
    for rule in GPU_CAPABLE:
        assert real[rule]["slurm_partition"] == "gpu" and int(real[rule]["gpus"]) >= 1, rule
    assert real["pretrain_base"]["gpus"] == "0" and real["pretrain_base"]["slurm_partition"] == "cpu"
    assert real["tokenize"]["slurm_partition"] == "cpu" and real["prepare_hq"]["mem_mb"] == "64200"
    # the smoke override: the same profile, CPU jobs that fit a 2-core node with ~24 GB
    smoke = planned(work, env, "--profile", "profiles/slurm", "--configfile", *SMOKE_FILES)
    assert smoke["train_cpt"]["gpus"] == "0" and smoke["train_cpt"]["nodes"] == "1"
    assert not {"gres", "mpi", "tasks_per_node", "cpus_per_task"} & set(smoke["train_cpt"])
    assert all(int(r.get("gpus", 0)) == 0 and int(r["mem_mb"]) <= 8000 for r in smoke.values())
    # without the profile: the same sizes, no partition
    local = planned(work, env, "--configfile", *SMOKE_FILES)
    assert local["train_cpt"]["mem_mb"] == "8000" and "slurm_partition" not in local["train_cpt"]


def test_an_unknown_rule_in_resources_stops_the_dry_run(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    change_config(work, lambda cfg: cfg["resources"].update(train_ctp={"gpus": 1}))
    proc = run_snakemake(work, "-n", timeout=300)
    assert proc.returncode != 0 and "config resources: no rule named train_ctp" in proc.stdout, proc.stdout[-2000:]


# --- the checks ----------------------------------------------------------------------------------


def test_gpu_count_reads_gpus_gpu_and_gres():
    assert gpu_count({}) == 0
    assert gpu_count({"gpus": 8}) == 8 and gpu_count({"gpu": 2}) == 2
    assert gpu_count({"gres": "gpu:4"}) == 4 and gpu_count({"gres": "gpu:h100:8,tmpdisk:100"}) == 8
    assert gpu_count({"gres": "gpu"}) == 1 and gpu_count({"gres": "tmpdisk:10"}) == 0


def test_check_slurm_names_what_to_set():
    ok = {"slurm_account": "a", "slurm_partition": "p"}
    jobs = [
        PendingJob("tokenize", False, {**ok}),
        PendingJob("train_cpt", False, {**ok, "slurm_partition": "g", "gres": "gpu:8", "gpus": 8}),
        PendingJob("fetch_owm", True, {}),  # local rules need nothing from SLURM
    ]
    assert check_slurm(jobs, "g") == [] and check_slurm(jobs, None) == []
    unset = [PendingJob("tokenize", False, {"slurm_account": "$RHO_SLURM_ACCOUNT", "slurm_partition": ""})]
    problems = check_slurm(unset, "g")
    assert len(problems) == 2 and "RHO_SLURM_ACCOUNT" in problems[0] and "RHO_SLURM_PARTITION" in problems[1]
    # GPUs asked for outside the GPU partition (pretrain_base of a config that pretrains on GPUs)
    base = [PendingJob("pretrain_base", False, {**ok, "gres": "gpu:8", "gpus": 8})]
    outside = check_slurm(base, "g")
    assert len(outside) == 1 and "pretrain_base (partition p)" in outside[0] and "RHO_SLURM_GPU_PARTITION=g" in outside[0]
    assert "profiles/slurm's set-resources" in outside[0]
    more = check_slurm([PendingJob("evaluate", False, {**ok, "gres": "gpu:1", "gpus": 2})], None)
    assert len(more) == 1 and "evaluate (gpus=2, gres/gpu=1)" in more[0]


def test_check_local_gpus_names_what_to_do():
    jobs = [PendingJob("tokenize", False, {}), PendingJob("train_cpt", False, {"gpus": 8})]
    assert check_local_gpus(jobs[:1], visible_gpus=0) == []
    assert check_local_gpus(jobs, visible_gpus=8) == []
    none = check_local_gpus(jobs, visible_gpus=0)
    assert len(none) == 1 and "no CUDA GPU" in none[0] and "train_cpt" in none[0]
    assert "--profile profiles/slurm" in none[0] and "resources.<rule>.gpus: 0" in none[0]
    few = check_local_gpus(jobs, visible_gpus=2)
    assert len(few) == 1 and "train_cpt (8)" in few[0] and "the 2 this machine has" in few[0]


def test_check_devices_holds_device_settings_to_the_configs_gpus():
    cfg = {"evaluation": {"device": "cuda", "backend": "hf"}, "cpt": {"training": {"bf16": True}},
           "reference": {"training": {"bf16": False}}}
    gpu = [PendingJob("evaluate", False, {"gpus": 1}), PendingJob("train_cpt", False, {"gpus": 8, "nodes": 2})]
    assert check_devices(gpu, cfg) == []
    cpu = [PendingJob("evaluate", False, {"gpus": 0}), PendingJob("train_cpt", False, {"gpus": 0})]
    problems = check_devices(cpu, cfg)
    assert len(problems) == 2
    assert "evaluation.device is cuda but resources.evaluate.gpus is 0" in problems[0]
    assert "cpt.training.bf16 is true (GPU training) but resources.train_cpt.gpus is 0" in problems[1]
    idle = check_devices(gpu[:1], {**cfg, "evaluation": {"device": "cpu", "backend": "hf"}})
    assert len(idle) == 1 and "resources.evaluate.gpus is 1 but evaluation.device is cpu" in idle[0]
    vllm = {**cfg, "evaluation": {"device": "cpu", "backend": "vllm", "vllm": {"tensor_parallel_size": 2}}}
    few = check_devices(gpu[:1], vllm)
    assert len(few) == 1 and "tensor_parallel_size 2" in few[0] and "resources.evaluate.gpus is 1" in few[0]
    assert check_devices([], cfg) == []  # nothing pending, nothing to hold


def test_check_model_parallel_counts_processes_per_job():
    two_nodes = {"gpus": 8, "nodes": 2, "gres": "gpu:8"}
    jobs = [PendingJob("train_cpt", False, two_nodes), PendingJob("train_reference", False, {"gpus": 8})]
    fine = {"train_cpt": {"tensor_parallel": 2, "pipeline_parallel": 8}, "train_reference": {"pipeline_parallel": 4}}
    assert check_model_parallel(jobs, fine) == []  # 16 and 8 processes
    bad = check_model_parallel(jobs, {"train_cpt": {"tensor_parallel": 3}, "train_reference": {}})
    assert len(bad) == 1 and "rule train_cpt: training.tensor_parallel=3 x pipeline_parallel=1" in bad[0]
    assert "its 16 process(es)" in bad[0] and "resources.train_cpt.gpus/nodes" in bad[0]
    # Without GPUs a training job is one process per node: any model parallelism fails there.
    cpu = check_model_parallel([PendingJob("train_cpt", False, {})], {"train_cpt": {"pipeline_parallel": 2}})
    assert len(cpu) == 1 and "its 1 process(es)" in cpu[0]
    assert check_model_parallel([], {"train_cpt": {"pipeline_parallel": 2}}) == []  # nothing to run


def test_model_parallel_sizes_that_cannot_run_stop_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    change_config(work, lambda cfg: cfg["cpt"]["training"].update(pipeline_parallel=2))
    proc = run_snakemake(work, "--cores", "1", timeout=300)
    assert proc.returncode != 0
    assert "Stopped before starting any job" in proc.stdout, proc.stdout[-3000:]
    assert "rule train_cpt: training.tensor_parallel=1 x pipeline_parallel=2" in proc.stdout
    assert not (work / "results").exists()


def test_gpus_without_slurm_on_a_machine_without_gpus_stop_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    change_config(work, lambda cfg: cfg["resources"].update(train_cpt={"gpus": 1}))
    proc = run_snakemake(work, "--cores", "1", timeout=300)
    assert proc.returncode != 0
    assert "Stopped before starting any job" in proc.stdout and "no CUDA GPU" in proc.stdout, proc.stdout[-3000:]
    assert not (work / "results").exists()


# --- the profile ---------------------------------------------------------------------------------


def test_the_profile_holds_site_settings_only():
    prof = profile()
    assert prof["executor"] == "slurm" and prof["retries"] >= 1 and prof["slurm-requeue"] is True
    assert prof["default-resources"]["slurm_account"] == "$RHO_SLURM_ACCOUNT"
    assert prof["default-resources"]["slurm_partition"] == "$RHO_SLURM_PARTITION"
    # a profile's set-threads and set-resources override the rules' (and so the config's) sizes
    assert "set-threads" not in prof
    assert prof["set-resources"] == {rule: {"slurm_partition": "$RHO_SLURM_GPU_PARTITION"} for rule in GPU_CAPABLE}
    assert not (REPO / "profiles/slurm-cpu").exists(), "one profile for every config"


def test_every_rule_the_real_config_gives_gpus_goes_to_the_gpu_partition():
    gpu_rules = {rule for rule, size in REAL["resources"].items() if size.get("gpus")}
    assert gpu_rules == GPU_CAPABLE and REAL["resources"]["pretrain_base"]["gpus"] == 0


# --- misconfigured runs stop before submission ---------------------------------------------------


@pytest.fixture
def fake_slurm(tmp_path) -> tuple[dict[str, str], Path]:
    """Environment whose PATH puts stand-ins for the SLURM client tools first; sbatch records calls."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls"
    for tool in ("sbatch", "squeue", "sacct", "sinfo", "scontrol", "sacctmgr", "sshare", "scancel"):
        record = f'echo "$@" >> {calls}\n' if tool == "sbatch" else ""
        (bin_dir / tool).write_text(f"#!/bin/sh\n{record}exit 1\n")
        (bin_dir / tool).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in SLURM_ENV}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env, calls


def run_in(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), *args],
        cwd=work, env={**env, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=300,
    )


def assert_stopped_before_anything(work: Path, proc: subprocess.CompletedProcess, calls: Path) -> None:
    assert proc.returncode != 0
    assert "Stopped before starting any job" in proc.stdout, proc.stdout[-3000:]
    assert not calls.exists(), "sbatch was called"
    assert not (work / "results").exists(), "a job ran"


def test_missing_account_and_partition_stop_the_run(tmp_path, fake_slurm):
    env, calls = fake_slurm
    work = copy_workflow(tmp_path / "wf")
    proc = run_in(work, env, "--cores", "1", "--profile", "profiles/slurm")
    assert_stopped_before_anything(work, proc, calls)
    assert "export RHO_SLURM_ACCOUNT=" in proc.stdout and "export RHO_SLURM_PARTITION=" in proc.stdout
    assert "RHO_SLURM_GPU_PARTITION=<partition> for GPU jobs" in proc.stdout


def test_gpus_must_match_the_configs_devices_and_the_gpu_partition(tmp_path, fake_slurm):
    env, calls = fake_slurm
    env.update(RHO_SLURM_ACCOUNT="acct", RHO_SLURM_PARTITION="cpu", RHO_SLURM_GPU_PARTITION="gpu")
    work = copy_workflow(tmp_path / "wf")

    def gpu_jobs(cfg: dict) -> None:
        cfg["resources"].update(evaluate={"gpus": 1}, pretrain_base={"gpus": 1})  # evaluation.device: cpu

    change_config(work, gpu_jobs)
    proc = run_in(work, env, "--cores", "1", "--profile", "profiles/slurm")
    assert_stopped_before_anything(work, proc, calls)
    assert "resources.evaluate.gpus is 1 but evaluation.device is cpu" in proc.stdout
    assert "rule(s) pretrain_base (partition cpu) ask for GPUs" in proc.stdout


def test_a_bare_profile_name_is_not_looked_up_in_profiles(monkeypatch, tmp_path):
    """`--profile slurm` searches ./slurm and the user/site config dirs; `--profile profiles/slurm`
    (or a link in ~/.config/snakemake) is the one step docs/running.md gives."""
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    assert get_profile_dir("profiles/slurm")[1] == Path("profiles/slurm/config.yaml")
    found = get_profile_dir("slurm")
    assert found is None or found[0] != REPO / "profiles/slurm"


# --- a real SLURM cluster on this machine --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster (slurmctld + slurmd + a private munged) on localhost; yields the
    environment that points the client tools at it, and its directory (logs, jobcomp.log)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: installs slurm-wlm and munge and runs slurmd")
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(t)]
    if missing:
        if not shutil.which("apt-get"):
            pytest.skip(f"{missing} not installed and no apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "slurm-wlm", "munge"]
        proc = subprocess.run(install, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        if proc.returncode != 0:  # stale or missing package lists on a fresh machine
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
            proc = subprocess.run(install, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.skip(f"apt-get install slurm-wlm munge failed: {proc.stdout[-500:]}")
    # The job step (snakemake-executor-plugin-slurm-jobstep) drops SLURM_* variables, SLURM_CONF too,
    # before its inner srun, which then reads the default /etc/slurm/slurm.conf: link ours there for
    # the test's duration, on machines that have no SLURM configuration of their own.
    etc_conf = Path("/etc/slurm/slurm.conf")
    if etc_conf.exists() or etc_conf.is_symlink():
        pytest.skip(f"{etc_conf} exists: this machine has its own SLURM setup, not touched by the test")
    root = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    mem_mb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) // 1024 - 1024
    for d in ("state", "spool", "munge"):
        (root / d).mkdir()
    key = root / "munge/munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge/munge.sock"
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=rhotest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.log
AccountingStorageType=accounting_storage/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    etc_conf.parent.mkdir(parents=True, exist_ok=True)
    etc_conf.symlink_to(conf)
    procs = [
        subprocess.Popen(
            ["munged", "-F", "--force", f"--socket={sock}", f"--key-file={key}", f"--pid-file={root}/munge/munged.pid",
             f"--log-file={root}/munge/munged.log", f"--seed-file={root}/munge/munged.seed"]
        )
    ]
    try:
        _wait(sock.exists, 30, "munged socket")
        procs.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], env=env))
        procs.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", host], env=env))

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout
            return out.strip() in {"idle", "mixed"}

        _wait(idle, 90, f"node idle (see {root}/slurmctld.log, slurmd.log)")
        yield env, root
    finally:
        for p in reversed(procs):  # only the daemons this fixture started, by their own handles
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if etc_conf.is_symlink() and etc_conf.resolve() == conf.resolve():
            etc_conf.unlink()


SMOKE_HARNESS = REPO.parent / "shared" / "benchmarks" / "math-evaluation-harness-7fd4949"
# The user's command for the real config with only the smoke override over it (docs/running.md).
USER_COMMAND = ("--cores", "all", "--profile", "profiles/slurm", "--configfile", *SMOKE_FILES)
# Settings of the executor plugin for this test cluster, not of the workflow (no environment variable
# sets them in snakemake-executor-plugin-slurm 2.8): it has no accounting database, so squeue answers
# status queries (its MinJobAge=3600 keeps finished jobs listed), polled from 5 s after a submission
# on (profiles/slurm keeps the plugin's default of 40 s, right for a shared cluster's controller); and
# the job logs of successful jobs stay, to tell which jobs went through sbatch.
TEST_CLUSTER = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "5",
                "--slurm-keep-successful-logs")


@pytest.mark.integration
@pytest.mark.skipif(not SMOKE_HARNESS.is_dir(), reason=f"harness data not found at {SMOKE_HARNESS} (shared/ absent)")
def test_the_real_config_with_the_smoke_override_runs_through_slurm(slurm_cluster, tmp_path):
    """`snakemake --cores all --profile profiles/slurm --configfile config/rho1-tinyllama.yaml
    config/rho1-smoke.yaml` on the one-node cluster: the one profile, the smoke's own CPU job sizes,
    every non-local job through sbatch (the fetch rules run on the submit host), ending with the
    README-style tables."""
    from rhocluster.evaluation.mirror import mirror_env, serve
    from rhocluster.workflow.variants import load_variants

    env, root = slurm_cluster
    work = copy_workflow(tmp_path / "wf")
    subprocess.run([sys.executable, "-m", "rhocluster.hub", "local", "resources/hub"], cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    with serve(SMOKE_HARNESS) as url:
        env = {**mirror_env(url, env), "RHO_SLURM_ACCOUNT": "rhotest", "RHO_SLURM_PARTITION": "debug",
               "RHO_SLURM_GPU_PARTITION": "debug", "OMP_NUM_THREADS": "1"}  # fmt: skip
        start = time.monotonic()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "snakemake"), *USER_COMMAND, *TEST_CLUSTER],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=3600,
        )  # fmt: skip
    print(f"smoke config through SLURM: {time.monotonic() - start:.0f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout[-6000:] + (root / "slurmctld.log").read_text()[-3000:]
    # The README-style tables and figures of the smoke run (tests/test_smoke.py checks their contents).
    tables = work / "results/rho1-smoke/tables"
    results, heldout = (tables / "results.md").read_text(), (tables / "heldout.md").read_text()
    for row in ["base", "reference", *load_variants(REAL)]:
        assert f"\n| {row} |" in results and f"\n| {row} |" in heldout, row
    assert (tables / "labels.md").read_text().startswith("No ground-truth token labels in this corpus")
    assert all((tables / name).stat().st_size > 0 for name in ("significance.md", "ci.md"))
    figures = {p.name for p in (work / "results/rho1-smoke/figures").iterdir()}
    assert {"accuracy.png", "loss.png", "kept_fraction.png", "clusters.png"} <= figures
    # Every SLURM job the executor submitted (its log: .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log)
    # completed according to SLURM's own job completion log (jobcomp/filetxt; no slurmdbd here) ...
    submitted = {
        log.stem: next(p for p in log.relative_to(work / ".snakemake/slurm_logs").parts if p.startswith("rule_"))
        for log in (work / ".snakemake/slurm_logs").rglob("*.log")
    }
    completed = {
        m.group(1): m.group(2) for m in re.finditer(r"JobId=(\d+) .*?JobState=(\w+)", (root / "jobcomp.log").read_text())
    }
    assert submitted and all(completed.get(j) == "COMPLETED" for j in submitted), (submitted, completed)
    rules = {r.removeprefix("rule_") for r in submitted.values()}
    assert {"prepare_web", "prepare_hq", "tokenize", "pretrain_base", "train_reference", "score_reference",
            "embed_sample", "cluster_level", "assign", "train_cpt", "score_heldout", "evaluate"} <= rules
    assert not rules & {"fetch_owm", "fetch_hq_dataset", "fetch_base_model", "fetch_benchmarks", "import_tokenizer"}
    # ... and slurmctld started each of them: its main scheduler logs "sched: Allocate JobId=N", the
    # backfill scheduler (which may start a job first) "sched/backfill: _start_job: Started JobId=N".
    started = set(re.findall(r"(?:sched: Allocate|_start_job: Started) JobId=(\d+)", (root / "slurmctld.log").read_text()))
    assert set(submitted) <= started, sorted(set(submitted) - started)
