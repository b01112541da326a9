"""Running on SLURM: the profiles, the checks that stop a misconfigured run before anything is
submitted, and (marked integration, excluded by default) the tiny workflow and the real config with the
smoke override through a real one-node SLURM cluster started on this machine.

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

from rhocluster.workflow.preflight import (
    PendingJob,
    check_local_gpus,
    check_model_parallel,
    check_slurm,
    gpu_count,
    gpu_rules_of,
)
from tests.conftest import REPO, change_config, copy_workflow, run_snakemake

PROFILES = REPO / "profiles"
SLURM_ENV = ("RHO_SLURM_ACCOUNT", "RHO_SLURM_PARTITION", "RHO_SLURM_GPU_PARTITION")
REAL = yaml.safe_load((REPO / "config/rho1-tinyllama.yaml").read_text())


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


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
        PendingJob("train_cpt", False, {**ok, "gres": "gpu:8"}),
        PendingJob("fetch_owm", True, {}),  # local rules need nothing from SLURM
    ]
    assert check_slurm(jobs, gpu_rules=True, gpu_rule_names={"train_cpt"}) == []
    unset = [PendingJob("tokenize", False, {"slurm_account": "$RHO_SLURM_ACCOUNT", "slurm_partition": ""})]
    problems = check_slurm(unset, gpu_rules=False, gpu_rule_names=set())
    assert len(problems) == 2 and "RHO_SLURM_ACCOUNT" in problems[0] and "RHO_SLURM_PARTITION" in problems[1]
    cpu = check_slurm(jobs, gpu_rules=False, gpu_rule_names={"train_cpt"})
    assert len(cpu) == 1 and "train_cpt (8)" in cpu[0] and "profiles/slurm-cpu" in cpu[0]
    gpu = check_slurm([PendingJob("evaluate", False, ok)], gpu_rules=True, gpu_rule_names={"evaluate"})
    assert len(gpu) == 1 and "evaluate" in gpu[0] and "profiles/slurm" in gpu[0]


def test_check_local_gpus_names_what_to_do():
    jobs = [PendingJob("tokenize", False, {}), PendingJob("train_cpt", False, {"gpus": 8})]
    assert check_local_gpus(jobs, gpu_rules=False, gpu_rule_names={"train_cpt"}, visible_gpus=0) == []
    assert check_local_gpus(jobs, gpu_rules=True, gpu_rule_names={"train_cpt"}, visible_gpus=8) == []
    assert check_local_gpus(jobs[:1], gpu_rules=True, gpu_rule_names={"train_cpt"}, visible_gpus=0) == []
    none = check_local_gpus(jobs, gpu_rules=True, gpu_rule_names={"train_cpt"}, visible_gpus=0)
    assert len(none) == 1 and "no CUDA GPU" in none[0] and "train_cpt" in none[0]
    assert "--profile profiles/slurm" in none[0] and "resources.gpu_rules: false" in none[0]
    few = check_local_gpus(jobs, gpu_rules=True, gpu_rule_names={"train_cpt"}, visible_gpus=2)
    assert len(few) == 1 and "train_cpt (8)" in few[0] and "the 2 this machine has" in few[0]


def test_check_model_parallel_counts_processes_per_job():
    two_nodes = {"gpus": 8, "nodes": 2, "gres": "gpu:8"}
    jobs = [PendingJob("train_cpt", False, two_nodes), PendingJob("train_reference", False, {"gpus": 8})]
    fine = {"train_cpt": {"tensor_parallel": 2, "pipeline_parallel": 8}, "train_reference": {"pipeline_parallel": 4}}
    assert check_model_parallel(jobs, fine, gpu_rules=True) == []  # 16 and 8 processes
    bad = check_model_parallel(jobs, {"train_cpt": {"tensor_parallel": 3}, "train_reference": {}}, gpu_rules=True)
    assert len(bad) == 1 and "rule train_cpt: training.tensor_parallel=3 x pipeline_parallel=1" in bad[0]
    assert "its 16 process(es)" in bad[0]
    # Without GPUs a training job is one process per node: any model parallelism fails there.
    cpu = check_model_parallel([PendingJob("train_cpt", False, {})], {"train_cpt": {"pipeline_parallel": 2}}, False)
    assert len(cpu) == 1 and "its 1 process(es) (one per node without GPUs)" in cpu[0]
    assert check_model_parallel([], {"train_cpt": {"pipeline_parallel": 2}}, False) == []  # nothing to run


def test_model_parallel_sizes_that_cannot_run_stop_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    change_config(work, lambda cfg: cfg["cpt"]["training"].update(pipeline_parallel=2))
    proc = run_snakemake(work, "--cores", "1", timeout=300)
    assert proc.returncode != 0
    assert "Stopped before starting any job" in proc.stdout, proc.stdout[-3000:]
    assert "rule train_cpt: training.tensor_parallel=1 x pipeline_parallel=2" in proc.stdout
    assert not (work / "results").exists()


def test_a_gpu_config_without_slurm_on_a_machine_without_gpus_stops_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    change_config(work, lambda cfg: cfg["resources"].update(gpu_rules=True))
    proc = run_snakemake(work, "--cores", "1", timeout=300)
    assert proc.returncode != 0
    assert "Stopped before starting any job" in proc.stdout and "no CUDA GPU" in proc.stdout, proc.stdout[-3000:]
    assert not (work / "results").exists()


def test_gpu_rules_depend_on_the_base_source():
    assert "pretrain_base" not in gpu_rules_of(REAL)
    assert "pretrain_base" in gpu_rules_of({"base": {"source": "pretrain"}})


# --- the profiles --------------------------------------------------------------------------------


def test_gpu_profile_gives_every_gpu_rule_gpus_and_reads_account_and_partition_from_the_environment():
    prof = profile("slurm")
    assert prof["executor"] == "slurm" and prof["retries"] >= 1 and prof["slurm-requeue"] is True
    assert prof["default-resources"]["slurm_account"] == "$RHO_SLURM_ACCOUNT"
    assert prof["default-resources"]["slurm_partition"] == "$RHO_SLURM_PARTITION"
    res = prof["set-resources"]
    for rule in gpu_rules_of(REAL):
        assert gpu_count(res[rule]) >= 1, rule
        assert res[rule]["slurm_partition"] == "$RHO_SLURM_GPU_PARTITION", rule
        assert res[rule]["runtime"] and res[rule]["mem_mb"], rule
    assert gpu_count(res["pretrain_base"]) == 0, "importing the HF base is CPU work"
    cpt = res["train_cpt"]
    assert cpt["nodes"] == 2 and cpt["mpi"] and cpt["tasks_per_node"] * cpt["cpus_per_task"] >= 8


def test_cpu_profile_is_the_gpu_profile_without_gpus():
    gpu, cpu = profile("slurm"), profile("slurm-cpu")
    assert "set-resources" not in cpu and "set-threads" not in cpu
    assert cpu["executor"] == gpu["executor"] and cpu["default-resources"]["slurm_account"] == "$RHO_SLURM_ACCOUNT"
    assert set(cpu) <= set(gpu)


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
    proc = run_in(work, env, "--cores", "1", "--profile", "profiles/slurm-cpu")
    assert_stopped_before_anything(work, proc, calls)
    assert "export RHO_SLURM_ACCOUNT=" in proc.stdout and "export RHO_SLURM_PARTITION=" in proc.stdout


def test_gpu_requests_must_match_the_config(tmp_path, fake_slurm):
    env, calls = fake_slurm
    env.update(RHO_SLURM_ACCOUNT="acct", RHO_SLURM_PARTITION="cpu", RHO_SLURM_GPU_PARTITION="gpu")
    work = copy_workflow(tmp_path / "wf")
    # The tiny default is a CPU config: the GPU profile is refused ...
    proc = run_in(work, env, "--cores", "1", "--profile", "profiles/slurm")
    assert_stopped_before_anything(work, proc, calls)
    assert "resources.gpu_rules: false" in proc.stdout and "profiles/slurm-cpu" in proc.stdout
    # ... and a GPU config with the CPU profile too.
    change_config(work, lambda cfg: cfg["resources"].update(gpu_rules=True))
    proc = run_in(work, env, "--cores", "1", "--profile", "profiles/slurm-cpu")
    assert_stopped_before_anything(work, proc, calls)
    assert "resources.gpu_rules: true" in proc.stdout and "train_cpt" in proc.stdout


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


def reduced_tiny_config(work: Path) -> None:
    """The tiny default with fewer shards, steps, variants and benchmarks (a couple dozen jobs)."""
    path = work / "config/config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["run"] = "slurmtest"
    cfg["data"]["synthetic"].update(web_shards=2, web_docs_per_shard=100, hq_docs=100, pretrain_shards=1,
                                    pretrain_docs_per_shard=200)
    for section, steps in (("base", 20), ("reference", 10), ("cpt", 10)):
        cfg[section]["training"].update(steps=steps, checkpoint_every=0, warmup_steps=2)
    cfg["variants"] = ["ct", "random"]
    cfg["cpt"]["seeds"] = [cfg["seed"], cfg["seed"] + 1]  # two seeds: the replicate models go through SLURM too
    cfg["data"]["synthetic"].update(heldout_web_docs=30, heldout_hq_docs=30)
    cfg["evaluation"].update(benchmarks=["gsm8k"], tiny_items_per_benchmark=4, max_gen_toks=16)
    cfg["report"]["update_readme"] = False
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.integration
def test_tiny_workflow_runs_through_slurm(slurm_cluster, tmp_path):
    env, root = slurm_cluster
    work = copy_workflow(tmp_path / "wf")
    reduced_tiny_config(work)
    env = {**env, "RHO_SLURM_ACCOUNT": "rhotest", "RHO_SLURM_PARTITION": "debug", "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "--cores", "1", "--profile", "profiles/slurm-cpu",
         "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "5",
         "--slurm-keep-successful-logs"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800,
    )
    elapsed = time.monotonic() - start
    print(f"tiny workflow through SLURM: {elapsed:.0f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout[-6000:] + (root / "slurmctld.log").read_text()[-3000:]
    assert (work / "results/slurmtest/tables/results.md").exists()
    # Every SLURM job the executor submitted (its log: .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log)
    # completed according to SLURM's own job completion log (jobcomp/filetxt; no slurmdbd here).
    submitted = {}
    for log in (work / ".snakemake/slurm_logs").rglob("*.log"):
        rule = next(p for p in log.relative_to(work / ".snakemake/slurm_logs").parts if p.startswith("rule_"))
        submitted[log.stem] = rule.removeprefix("rule_")
    completed = {
        m.group(1): m.group(2)
        for m in re.finditer(r"JobId=(\d+) .*?JobState=(\w+)", (root / "jobcomp.log").read_text())
    }
    assert submitted and all(completed.get(j) == "COMPLETED" for j in submitted), (submitted, completed)
    rules = set(submitted.values())
    assert {"prepare_corpus", "train_tokenizer", "tokenize", "pretrain_base", "train_reference", "train_cpt",
            "select_tokens", "export_hf", "evaluate"} <= rules
    # slurmctld started each of them: its main scheduler logs "sched: Allocate JobId=N", the backfill
    # scheduler (which may start a job first) "sched/backfill: _start_job: Started JobId=N".
    ctld_log = (root / "slurmctld.log").read_text()
    started = set(re.findall(r"(?:sched: Allocate|_start_job: Started) JobId=(\d+)", ctld_log))
    assert set(submitted) <= started, sorted(set(submitted) - started)


SMOKE_HARNESS = REPO.parent / "shared" / "benchmarks" / "math-evaluation-harness-7fd4949"


@pytest.mark.integration
@pytest.mark.skipif(not SMOKE_HARNESS.is_dir(), reason=f"harness data not found at {SMOKE_HARNESS} (shared/ absent)")
def test_the_real_config_with_the_smoke_override_runs_through_slurm(slurm_cluster, tmp_path):
    """The user's command for the real config with only config/rho1-smoke.yaml over it, on the one-node
    cluster: every non-local job through sbatch. The smoke override is a CPU config (resources.gpu_rules:
    false), so its profile is profiles/slurm-cpu, which is profiles/slurm without the GPU requests
    (test_cpu_profile_is_the_gpu_profile_without_gpus); the fetch rules run on the submit host."""
    from rhocluster.evaluation.mirror import mirror_env, serve

    env, root = slurm_cluster
    work = copy_workflow(tmp_path / "wf")
    subprocess.run([sys.executable, "-m", "rhocluster.hub", "local", "resources/hub"], cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    with serve(SMOKE_HARNESS) as url:
        env = {**mirror_env(url, env), "RHO_SLURM_ACCOUNT": "rhotest", "RHO_SLURM_PARTITION": "debug", "OMP_NUM_THREADS": "1"}
        start = time.monotonic()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "snakemake"), "--cores", "all", "--profile", "profiles/slurm-cpu",
             "--configfile", "config/rho1-tinyllama.yaml", "config/rho1-smoke.yaml",
             "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "5",
             "--slurm-keep-successful-logs"],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=3600,
        )  # fmt: skip
    print(f"smoke config through SLURM: {time.monotonic() - start:.0f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout[-6000:] + (root / "slurmctld.log").read_text()[-3000:]
    assert (work / "results/rho1-smoke/tables/results.md").exists()
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
