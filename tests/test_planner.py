"""The resource planner against hand-computed figures for TinyLlama-1.1B (N = 1,100,048,384) and
against the DAG it plans."""

from __future__ import annotations

import json
import re

import pytest

from rhocluster.model.shape import TINYLLAMA
from rhocluster.planner import load_config, main, make_plan, profile_gpus, render_markdown, token_counts
from rhocluster.training.flops import train_flops_per_token
from tests.conftest import REPO, change_config, copy_workflow, run_snakemake

N = 1_100_048_384
H100 = 989e12
WEB_SHARE = 1000 / 1002  # the real config cuts OpenWebMath into 1000 trained + 2 held-out row ranges


@pytest.fixture(scope="module")
def real() -> dict:
    return load_config([REPO / "config/rho1-tinyllama.yaml"], REPO / "config/schema.yaml")


def stage(plan, name):
    return next(s for s in plan.stages if s.name.startswith(name))


def test_tinyllama_figures_match_hand_computation(real, tmp_path):
    plan = make_plan(real, tmp_path)  # no shards there: the config's token estimates
    assert plan.parameters == N
    # CPT: 14,305 steps x 512 windows x 2,048 targets = 14,999,879,680 tokens per variant;
    # 6 x N x tokens = 9.90036e19 FLOPs; / (989e12 x 0.5) / 3600 = 55.614 GPU-hours; x 7 variants,
    # plus the forward-only ranking pass of the two SLM rows, rho1 and cluster_slm (2 x N x tokens: a
    # third of a variant each; 128 micro-batches of 4 windows per step on one GPU).
    cpt = stage(plan, "train CPT")
    assert cpt.jobs == {"train_cpt": 7}
    assert cpt.flops == pytest.approx((7 + 2 / 3) * 9.9003560413e19, rel=1e-9)
    assert cpt.gpu_hours == pytest.approx((7 + 2 / 3) * 55.6137290, rel=1e-6)
    assert "forward-only pass" in cpt.note
    # Reference: 1,431 x 512 x 2,048 = 1,500,512,256 tokens: 9.90382e18 FLOPs, 5.5633 GPU-hours.
    ref = stage(plan, "train reference")
    assert ref.flops == pytest.approx(9.903816494e18, rel=1e-9) and ref.gpu_hours == pytest.approx(5.5633168, rel=1e-6)
    # Scoring: 2 x N x 14.7e9 tokens, reference and base = 6.46828e19 FLOPs at 40% MFU: 45.418 GPU-hours,
    # of which the 1000 trained row ranges hold 1000/1002 (2 more are held out).
    # The embedding sample: 1,024 windows of 2,049 tokens per shard, 11 of 22 layers deep (layer middle):
    # 0.5 x 2N x 2.098e9 tokens = 2.308e18 FLOPs, 1.621 GPU-hours.
    score = stage(plan, "score")
    assert score.jobs == {"score_reference": 1000, "score_base": 1000, "embed_sample": 1000}
    sample_hours = 0.5 * 2 * N * 1024 * 2049 * 1000 / (H100 * 0.4) / 3600
    assert sample_hours == pytest.approx(1.6206, rel=1e-4)
    assert score.gpu_hours == pytest.approx(45.4182430 * WEB_SHARE + sample_hours, rel=1e-6)
    # Assignment: the reference forward pass up to the middle layer (half of 22.709 h) plus
    # 2 x 14.7e9 x 16,384 x 64 FLOPs of centroid search at 50 TFLOP/s (0.171 h).
    assign_hours = (22.7091215 / 2 + 0.1712674) * WEB_SHARE
    assert stage(plan, "assign").gpu_hours == pytest.approx(assign_hours, rel=1e-6)
    # Evaluation: 9 models x 12,149 items x (1,000 + 256) tokens x 2N at 2% MFU = 4.2431 GPU-hours.
    ev = stage(plan, "evaluate")
    assert ev.gpu_hours == pytest.approx(3.3002072 * 9 / 7, rel=1e-6)
    # one evaluation job per model, running all nine benchmarks
    assert ev.jobs == {"fetch_benchmarks": 1, "normalize_benchmark": 9, "evaluate": 9}
    # Held-out loss: 9 models x (2 web ranges, 14.7e9 / 1002 tokens each, + 20,000 HQ documents x 200) x 2N
    # at 40% MFU.
    held = stage(plan, "held-out loss")
    held_tokens = 2 * 14.7e9 / 1002 + 20_000 * 200
    assert held.jobs == {"score_heldout": 9}
    assert held.gpu_hours == pytest.approx(9 * held_tokens * 2 * N / (H100 * 0.4) / 3600, rel=1e-6)
    assert plan.total_gpu_hours == pytest.approx((7 + 2 / 3) * 55.6137290 + 5.5633168 + 45.4182430 * WEB_SHARE
                                                 + sample_hours + assign_hours + 3.3002072 * 9 / 7 + held.gpu_hours
                                                 + stage(plan, "cluster levels").gpu_hours, rel=1e-6)
    # Disk: per-token files of 14.7e9 tokens: two fp16 losses, int32 leaf + fp16 distance, 4 uint8 masks
    # (random, excess_static, cluster, cluster_excess).
    assert stage(plan, "assign").disk_bytes == pytest.approx(14.7e9 * WEB_SHARE * 6)
    assert stage(plan, "select tokens").disk_bytes == pytest.approx(14.7e9 * WEB_SHARE * 4)
    assert stage(plan, "select tokens").jobs == {"random_mask": 1000, "select_excess_tokens": 1, "select_cluster_tokens": 2}
    assert stage(plan, "fit projection").memory_bytes == pytest.approx(8000 * 1000 * 2048 * 4)


def test_clustering_cost_follows_the_resampling_settings(real, tmp_path):
    """cluster levels = per level a k-means fit on every point plus resampling_rounds fresh fits on the
    closest points, each with k-means++ seeding, Lloyd iterations and a search of every point."""
    plan = make_plan(real, tmp_path)
    cl = stage(plan, "cluster levels")
    # Level 1: n = 8,000 x 1,000 = 8M sampled tokens, k = 16,384, d = 64, 50 iterations, 9 rounds,
    # r = ceil(0.5 x 8M / 16,384) = 245 points per cluster (a 4,014,080-point union), 11 k-means++
    # candidates (2 + ln k) on every point, faiss' 256 points per centroid (4,194,304) in the first fit.
    n, k, d, union, cap = 8_000_000, 16384, 64, 245 * 16384, 256 * 16384
    first = 2 * 11 * k * n * d + 2 * k * d * (49 * cap + n) + 2 * n * k * d
    round_ = 2 * 11 * k * union * d + 2 * k * d * 50 * union + 2 * n * k * d
    level1 = first + 9 * round_
    assert level1 == pytest.approx(5.4e15, rel=0.01)
    # levels 2-4 (16,384 -> 2,048 -> 256 -> 32 points) add ~0.03%
    assert cl.flops == pytest.approx(level1, rel=1e-3) and cl.flops > level1
    assert cl.gpu_hours == pytest.approx(cl.flops / 50e12 / 3600, rel=1e-9)  # plan.search_tflops
    assert "40 k-means fits" in cl.note
    # the former settings (20 iterations, 2 rounds at level 1, 1 at level 2, seeding on 262,144 rows)
    # cost about a tenth
    old = [{"k": 16384, "n_iter": 20, "resampling_rounds": 2}, {"k": 2048, "n_iter": 20, "resampling_rounds": 1},
           {"k": 256, "n_iter": 20}, {"k": 32, "n_iter": 20}]
    cheap = make_plan({**real, "clustering": {**real["clustering"], "levels": old}}, tmp_path)
    assert stage(cheap, "cluster levels").flops < 0.15 * cl.flops


def test_detailed_flops_reuse_the_trainer_formula(real):
    real = {**real, "plan": {**real["plan"], "flops": "detailed"}}
    plan = make_plan(real)
    per_token = train_flops_per_token(TINYLLAMA, 2048)
    # 6 x (N minus the 32,000 x 2,048 input embedding, a lookup) + 6 x 22 layers x 2,048 x 2,048 (attention)
    assert per_token == 6 * (N - 32000 * 2048) + 6 * 22 * 2048 * 2048
    assert stage(plan, "train CPT").flops == pytest.approx((7 + 2 / 3) * 14_999_879_680 * per_token)


def test_wall_clock_hours_use_the_profiles_gpus(real):
    gpus = profile_gpus(REPO / "profiles/slurm")
    assert gpus["train_cpt"] == 16 and gpus["train_reference"] == 8 and gpus["score_reference"] == 1
    plan = make_plan(real, gpus_per_job=gpus)
    # 16 GPUs x 4 windows = 64 per forward pass, 8 micro-batches per rank: rho1 still ranks first.
    assert stage(plan, "train CPT").wall_hours == pytest.approx((7 + 2 / 3) / 7 * 55.6137290 / 16, rel=1e-6)
    sample_hours = 0.5 * 2 * N * 1024 * 2049 * 1000 / (H100 * 0.4) / 3600  # embed_sample, half depth
    assert stage(plan, "score").wall_hours == pytest.approx((45.4182430 * WEB_SHARE + sample_hours) / 1000, rel=1e-6)
    md = render_markdown(plan)
    assert "| train CPT variants | train_cpt x7 | yes |" in md and "1,100,048,384 parameters" in md
    # Evaluation: the GPU-hours spread over the evaluate jobs (one per model, 1 GPU each), not over the
    # CPU jobs of the stage, even where those are more (two variants: 4 models, 9 normalize jobs).
    two = make_plan({**real, "variants": ["ct", "cluster"]}, gpus_per_job=gpus)
    ev = stage(two, "evaluate")
    assert ev.jobs["evaluate"] == 4 and ev.jobs["normalize_benchmark"] == 9 and gpus["evaluate"] == 1
    assert ev.wall_hours == pytest.approx(ev.gpu_hours / 4, rel=1e-9)


def test_rho1_ranking_pass_and_pipeline_bubble(real):
    gpus = {"train_cpt": 16, "train_reference": 8}
    one_pass = {**real, "cpt": {**real["cpt"], "training": {**real["cpt"]["training"], "micro_batch": 32}}}
    cpt = stage(make_plan(one_pass, gpus_per_job=gpus), "train CPT")  # 16 x 32 = 512: one micro-batch
    assert cpt.gpu_hours == pytest.approx(7 * 55.6137290, rel=1e-6) and "forward-only" not in cpt.note
    # 2 stages on 8 GPUs: 4 data-parallel pipelines x 4 windows, 32 micro-batches per step; the 1F1B
    # warm-up and drain leave the stages idle 1 of 33 micro-batch slots.
    piped = {**real, "reference": {**real["reference"], "training": {**real["reference"]["training"],
                                                                       "pipeline_parallel": 2}}}
    ref = stage(make_plan(piped, gpus_per_job=gpus), "train reference")
    assert ref.gpu_hours == pytest.approx(5.5633168 * 33 / 32, rel=1e-6)


def test_token_counts_are_measured_once_shards_exist(real, tmp_path):
    web = tmp_path / "shards/web"
    web.mkdir(parents=True)
    for i in range(10):  # 10 of 1000 shards, 7,000 windows of 2,049 tokens each
        (web / f"{i:05d}.json").write_text(json.dumps({"n_windows": 7000, "seq_len": 2049}))
    tokens, sources = token_counts(real, tmp_path)
    assert tokens["web"] == 7000 * 2049 * 1000 and sources["web"] == "measured on 10 of 1000 shards"
    assert tokens["hq"] == pytest.approx(5.35e8) and sources["hq"].startswith("config estimate")


@pytest.mark.parametrize(
    "edit",
    [
        lambda cfg: None,
        lambda cfg: cfg["scoring"].update(fused_pass=True, sample_windows_per_shard=8),
        lambda cfg: cfg.update(variants=["ct", "cluster"]),
    ],
    ids=["tiny", "fused-pass", "two-variants"],
)
def test_plan_job_counts_match_the_tiny_dag(tmp_path, edit):
    """The planner's job counts per rule are the dry run's, on the tiny default and variations."""
    work = copy_workflow(tmp_path / "wf")
    change_config(work, edit)
    proc = run_snakemake(work, "-n", "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    table = proc.stdout.split("Job stats:")[1]
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    planned = make_plan(load_config([work / "config/config.yaml"], work / "config/schema.yaml")).jobs_per_rule()
    assert {rule: jobs.get(rule, 0) for rule in planned} == planned


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["--configfile", str(REPO / "config/rho1-tinyllama.yaml"), "--schema", str(REPO / "config/schema.yaml"),
                 "--results", str(tmp_path), "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["parameters"] == N and data["jobs_per_rule"]["tokenize"] == 1019
    assert out.with_suffix(".md").read_text() == capsys.readouterr().out
