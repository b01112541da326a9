"""The real experiment's config (config/rho1-tinyllama.yaml): complete on its own, Rho-1's settings, and
a full DAG from a dry run with no data present, plain and through the SLURM profile, whose jobs the
planner's stages cover (and whose counts tests/test_planner.py's REAL_JOBS records)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

from rhocluster.model.shape import TINYLLAMA, LlamaShape
from rhocluster.planner import OTHER, dag_job_counts, load_config, make_plan
from tests.conftest import REPO, copy_workflow, run_snakemake
from tests.test_planner import REAL_JOBS

CONFIG = REPO / "config/rho1-tinyllama.yaml"
RAW = yaml.safe_load(CONFIG.read_text())


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config([CONFIG], REPO / "config/schema.yaml")


def test_the_real_config_is_complete_on_its_own(config):
    """Validated alone (no tiny default underneath), it sets every section and no tiny-only key."""
    assert config["data"]["source"] == "hf" and "synthetic" not in RAW["data"]
    assert config["tokenizer"]["source"] == "hf" and "vocab_size" not in RAW["tokenizer"]
    assert config["base"]["source"] == "hf" and config["base"]["hub"]["repo"] == "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"
    assert config["data"]["web"]["repo"] == "open-web-math/open-web-math"
    assert config["data"]["web"]["num_shards"] == 1000
    assert config["evaluation"]["source"] == "fetch" and "tiny_items_per_benchmark" not in RAW["evaluation"]
    assert config["evaluation"]["benchmarks"] == ["gsm8k", "svamp", "asdiv", "mawps", "tabmwp", "mathqa", "mmlu_stem", "sat_math", "math"]
    assert config["variants"] == [
        "ct", "rho1", "random", "excess_static", "cluster", "cluster_excess", "cluster_slm", "cluster_filter",
        "excess_smoothed",
    ]
    assert config["resources"]["train_cpt"]["gpus"] == 8 and config["hub"]["allow_unpinned"] is False


# Rho-1's continued pretraining of TinyLlama-1.1B (arXiv 2404.07965): 15B tokens in 512-sequence
# batches of 2048 tokens (14,305 steps), peak lr 8e-5 with cosine decay, weight decay 0.1, bf16, SLM
# keeping 60% of the tokens. The floor (10% of peak) and warm-up (~0.5% of steps) are not published:
# the real config's choice, stated here so that a change to them is deliberate.
RHO1_CPT = {
    "steps": 14305, "global_batch": 512, "lr": 8e-5, "min_lr": 8e-6, "warmup_steps": 70, "weight_decay": 0.1,
    "bf16": True, "budget": 0.6,
}


def test_the_real_config_has_rho1s_settings(config):
    shape = LlamaShape.from_dict(config["model"])
    assert shape == TINYLLAMA and shape.num_parameters() == 1_100_048_384
    rho1 = RHO1_CPT
    cpt = config["cpt"]["training"]
    for key in ("steps", "global_batch", "lr", "min_lr", "warmup_steps", "weight_decay", "bf16"):
        assert cpt[key] == rho1[key], key
    assert config["data"]["seq_len"] == 2048
    assert cpt["steps"] * cpt["global_batch"] * config["data"]["seq_len"] == pytest.approx(15e9, rel=1e-4)
    assert config["selection"]["budget"] == 0.6 == rho1["budget"]
    ref = config["reference"]["training"]
    assert ref["lr"] == 5e-5 and ref["steps"] * ref["global_batch"] * 2048 == pytest.approx(3 * 0.5e9, rel=0.01)
    hq = sum(d["approx_tokens"] for d in config["data"]["hq"]["datasets"])
    assert 0.4e9 <= hq <= 0.6e9, "Rho-1's ~0.5B-token reference mixture"


def dry_run(work: Path, *args: str, configfiles: tuple[str, ...] = ("config/rho1-tinyllama.yaml",)) -> dict[str, int]:
    """Jobs per rule of the workflow in ``work`` (the planner's dry run)."""
    start = time.perf_counter()
    jobs = dag_job_counts([work / f for f in configfiles], work, args)
    print(f"dry run {' '.join(args) or '(plain)'}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return jobs


def check_plan_covers(jobs: dict[str, int], config: dict) -> None:
    """Every rule of the dry run is in a stage of the plan that the planner knows how to cost."""
    plan = make_plan(config, jobs)
    assert plan.jobs_per_rule() == jobs and OTHER not in [s.name for s in plan.stages]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("real"))


def check_counts(jobs: dict[str, int], config: dict) -> None:
    check_plan_covers(jobs, config)
    assert jobs == REAL_JOBS
    assert jobs["prepare_web"] == 1000 + 2 and jobs["tokenize"] == 1000 + 16 + 2 + 1  # + held-out web, hq
    n_variants = len(config["variants"])
    assert jobs["evaluate"] == 2 + n_variants and jobs["train_cpt"] == n_variants == 9 and jobs["cluster_level"] == 4
    assert not {"prepare_corpus", "train_tokenizer"} & set(jobs), "no tiny-only rules: the tiny config is not merged in"


def test_dry_run_builds_the_full_dag(workdir, config):
    check_counts(dry_run(workdir), config)


def test_dry_run_through_the_slurm_profile(workdir, config):
    check_counts(dry_run(workdir, "--profile", "profiles/slurm"), config)


def test_a_configfile_is_complete_and_later_files_override_earlier_ones(tmp_path):
    """The Snakefile reads config/config.yaml only without --configfile; list it to layer overrides."""
    work = copy_workflow(tmp_path / "wf")
    (work / "override.yaml").write_text("run: layered\n")
    alone = run_snakemake(work, "-n", "--quiet", "rules", "--configfile", "override.yaml", timeout=300)
    assert alone.returncode != 0 and "required property" in alone.stdout
    layered = run_snakemake(
        work, "-n", "--configfile", "config/config.yaml", "override.yaml", "--", "results/layered/tables/results.md",
        timeout=300,
    )
    assert layered.returncode == 0, layered.stdout[-3000:]
    assert "results/layered/shards/web/00000.bin" in layered.stdout


PILOT = REPO / "config/rho1-pilot.yaml"


def test_the_pilot_differs_from_the_real_config_in_sizes_only(config):
    """config/rho1-pilot.yaml overrides sizes only (corpus share, steps, seeds, cluster sizes, benchmarks)."""
    raw = yaml.safe_load(PILOT.read_text())
    sized = {"run", "data", "cpt", "scoring", "clustering", "evaluation", "report"}
    assert set(raw) <= sized
    assert set(raw["data"]["web"]) == {"use_shards"} and set(raw["scoring"]) == {"sample_tokens_per_shard"}
    assert set(raw["evaluation"]) == {"benchmarks"} and set(raw["report"]) == {"update_readme"}
    pilot = load_config([CONFIG, PILOT], REPO / "config/schema.yaml")
    for key in ("model", "base", "reference", "variants", "selection", "tokenizer", "hub", "resources"):
        assert pilot[key] == config[key], key
    for key in ("lr", "min_lr", "global_batch", "micro_batch", "bf16", "weight_decay"):
        assert pilot["cpt"]["training"][key] == config["cpt"]["training"][key], key


def test_the_pilots_plan_from_its_dry_run_fits_a_node_day(workdir):
    """Planned at <= 24 h on one 8-GPU node, with the jobs of its dry run."""
    pilot = load_config([CONFIG, PILOT], REPO / "config/schema.yaml")
    jobs = dry_run(workdir, configfiles=("config/rho1-tinyllama.yaml", "config/rho1-pilot.yaml"))
    check_plan_covers(jobs, pilot)
    assert jobs["train_cpt"] == 9 * 2 and jobs["score_heldout"] == 2 + 9 * 2 and jobs["assign"] == 150
    # one cluster tree per seed (clustering.trees: per_seed): two trees of 4 levels, one assign pass per shard
    assert jobs["cluster_level"] == 2 * 4 and jobs["fit_projection"] == 2 and jobs["embed_sample"] == 150
    plan = make_plan(pilot, jobs)
    cpt_tokens = pilot["cpt"]["training"]["steps"] * 512 * 2048
    assert 1.9e9 < cpt_tokens < 2.1e9 and cpt_tokens < plan.tokens["web"]  # under one epoch of its shards
    assert plan.total_gpu_hours / 8 <= 24, plan.total_gpu_hours


SMOKE = REPO / "config/rho1-smoke.yaml"


def flatten(value: object, path: tuple = ()) -> dict[tuple, object]:
    """Every leaf of a config (mappings and lists walked into) by its key path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, (*path, key)).items()}
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, (*path, i)).items()}
    return {path: value}


def _training(section: str, keys: tuple[str, ...]) -> set[tuple]:
    return {(section, "training", key) for key in keys}


# The keys config/rho1-smoke.yaml changes, by kind; the test below holds it to exactly these.
SMOKE_SIZES = {
    ("run",),
    ("data", "seq_len"),
    *{("data", "web", key) for key in ("num_shards", "heldout_shards", "approx_tokens")},
    ("data", "hq", "num_shards"),
    ("data", "hq", "heldout_docs"),
    *{("data", "hq", "datasets", i, "approx_tokens") for i in range(4)},
    *{("model", key) for key in ("hidden_size", "ffn_hidden_size", "num_layers", "num_attention_heads", "num_query_groups")},
    *_training("reference", ("steps", "global_batch", "warmup_steps", "checkpoint_every", "log_every")),
    *_training("cpt", ("steps", "global_batch", "warmup_steps", "checkpoint_every", "log_every")),
    ("scoring", "sample_tokens_per_shard"),
    ("scoring", "sample_windows_per_shard"),
    ("scoring", "projection", "dim"),
    *{("clustering", "levels", i, "k") for i in range(4)},
    ("evaluation", "benchmarks"),  # tabmwp: not in the offline mirror (config comment)
    ("evaluation", "limit"),
    ("evaluation", "max_gen_toks"),
    ("report", "update_readme"),
}
SMOKE_DEVICE = {
    ("reference", "training", "bf16"),
    ("cpt", "training", "bf16"),
    ("evaluation", "device"),
    ("evaluation", "batch_size"),  # auto (lm-eval's search on a GPU) -> a fixed CPU batch
}
# Job sizes (threads, memory, GPUs, nodes, the srun launch) are sizes and device settings both: the
# smoke may reset any of the real config's (to fit one CPU node), and add none of its own.
SMOKE_JOB_SIZES = {("resources", *key) for key in flatten(yaml.safe_load(SMOKE.read_text())["resources"])}
SMOKE_HUB = {
    ("data", "web", "repo"),
    ("data", "web", "revision"),
    *{("data", "hq", "datasets", i, key) for i in range(4) for key in ("repo", "revision")},
    ("base", "hub", "repo"),
    ("base", "hub", "revision"),
    ("base", "hf_dir"),  # the stand-in model is never materialised where the real TinyLlama goes
}


def test_the_smoke_config_differs_from_the_real_config_in_sizes_device_and_hub_sources_only(config):
    """config/rho1-smoke.yaml changes exactly the keys above (every one of them, nothing else): the same
    rules, variants, seeds, budget, evaluation protocol, held-out logic, reports and model vocabulary and
    context; its hub sources are the local hub's stand-ins for the real repositories."""
    from rhocluster.hub.download import config_sources
    from rhocluster.hub.local import SMOKE_SHAPE, repo_dir

    smoke = load_config([CONFIG, SMOKE], REPO / "config/schema.yaml")
    real, small = flatten(config), flatten(smoke)
    changed = {key for key in real.keys() | small.keys() if real.get(key, "<absent>") != small.get(key, "<absent>")}
    allowed = SMOKE_SIZES | SMOKE_DEVICE | SMOKE_HUB | SMOKE_JOB_SIZES
    assert changed == allowed, sorted(changed ^ allowed, key=str)
    assert set(smoke["resources"]) <= set(config["resources"]), "the smoke resets the real config's job sizes only"
    assert smoke["model"] == SMOKE_SHAPE.to_dict(), "the local hub's model has the smoke config's shape"
    assert smoke["model"]["vocab_size"] == 32000 and smoke["model"]["max_position_embeddings"] == 2048
    assert smoke["evaluation"]["backend"] == "hf" and smoke["evaluation"]["device"] == "cpu"
    assert not smoke["reference"]["training"]["bf16"] and not smoke["cpt"]["training"]["bf16"]
    real_sources, smoke_sources = config_sources(config), config_sources(smoke)
    assert real_sources.keys() == smoke_sources.keys()
    for name, source in real_sources.items():
        local = smoke_sources[name]
        assert local.is_local and local.files == source.files and local.key == source.key
        assert local.repo == str(repo_dir("resources/hub", source.repo, source.repo_type)), name


def test_the_smoke_dag_has_the_real_dags_rules(workdir, config):
    """The smoke override runs every rule the real config runs (fewer jobs of each) but the README update,
    and the planner covers it like the real config."""
    smoke = load_config([CONFIG, SMOKE], REPO / "config/schema.yaml")
    jobs = dry_run(workdir, configfiles=("config/rho1-tinyllama.yaml", "config/rho1-smoke.yaml"))
    check_plan_covers(jobs, smoke)
    assert set(jobs) == set(REAL_JOBS) - {"update_readme"}
    assert jobs["train_cpt"] == jobs["score_heldout"] - 2 == 9 and jobs["prepare_web"] == 2 + 1
    assert jobs["normalize_benchmark"] == len(smoke["evaluation"]["benchmarks"]) and jobs["cluster_level"] == 4


def test_prepare_hq_asks_for_memory_by_the_mixtures_size(workdir):
    """prepare_hq holds the rendered mixture: 64 GB for the real ~0.5B tokens, the 2 GB floor for the
    smoke run's (whose SLURM test node has less than 64 GB)."""
    for configfiles, want in (
        (("config/rho1-tinyllama.yaml",), 64200),
        (("config/rho1-tinyllama.yaml", "config/rho1-smoke.yaml"), 2000),
    ):
        proc = run_snakemake(workdir, "-n", "--configfile", *configfiles, "--", "prepare_hq", timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert f"mem_mb={want}," in proc.stdout, proc.stdout[-2000:]
