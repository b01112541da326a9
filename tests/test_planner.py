"""The resource planner: its cost arithmetic against hand-computed figures for TinyLlama-1.1B
(N = 1,100,048,384) given the DAG's job counts, and its job counts from Snakemake's dry run."""

from __future__ import annotations

import json

import pytest

from rhocluster.model.shape import TINYLLAMA
from rhocluster.planner import (
    OTHER,
    STAGES,
    DryRunError,
    config_job_counts,
    dag_job_counts,
    load_config,
    main,
    make_plan,
    parse_job_stats,
    config_gpus,
    render_markdown,
    token_counts,
)
from rhocluster.training.flops import train_flops_per_token
from tests.conftest import REPO, copy_workflow
from tests.test_lint import _rule_blocks

N = 1_100_048_384
H100 = 989e12
WEB_SHARE = 1000 / 1002  # the real config cuts OpenWebMath into 1000 trained + 2 held-out row ranges
# The real config's DAG (Job stats of `snakemake -n --configfile config/rho1-tinyllama.yaml`, `all` left
# out); tests/test_real_config.py checks it against the dry run.
REAL_JOBS = {
    "fetch_base_model": 1, "fetch_benchmarks": 1, "fetch_hq_dataset": 4, "fetch_owm": 1, "import_tokenizer": 1,
    "normalize_benchmark": 9, "prepare_hq": 1, "prepare_web": 1002, "pretrain_base": 1, "export_hf": 11,
    "tokenize": 1019, "evaluate": 11, "score_base": 1000, "score_heldout": 11, "train_cpt": 9,
    "train_reference": 1, "embed_sample": 1000, "score_reference": 1000, "fit_projection": 1,
    "cluster_level": 4, "assign": 1000, "select_tokens": 6,
    "figure_clusters": 1,
    "inspect_clusters": 1, "figure_training": 1, "heldout_overlap": 1, "heldout_tables": 1, "significance": 1, "tables": 1,
    "figure_accuracy": 1, "update_readme": 1,
}
# Rules that gather targets (`all`, `report_all`) or plan the run (`plan`): never a stage's job.
NOT_STAGES = {"all", "report_all", "plan"}


@pytest.fixture(scope="module")
def real() -> dict:
    return load_config([REPO / "config/rho1-tinyllama.yaml"], REPO / "config/schema.yaml")


def stage(plan, name):
    return next(s for s in plan.stages if s.name.startswith(name))


def test_tinyllama_figures_match_hand_computation(real, tmp_path):
    plan = make_plan(real, REAL_JOBS, tmp_path)  # no shards there: the config's token estimates
    assert plan.parameters == N
    # CPT: 14,305 steps x 512 windows x 2,048 targets = 14,999,879,680 tokens per variant;
    # 6 x N x tokens = 9.90036e19 FLOPs; / (989e12 x 0.5) / 3600 = 55.614 GPU-hours; x 9 variants,
    # plus the forward-only ranking pass of the two SLM rows, rho1 and cluster_slm (2 x N x tokens: a
    # third of a variant each; 128 micro-batches of 4 windows per step on one GPU).
    cpt = stage(plan, "train CPT")
    assert cpt.jobs == {"train_cpt": 9}
    assert cpt.flops == pytest.approx((9 + 2 / 3) * 9.9003560413e19, rel=1e-9)
    assert cpt.gpu_hours == pytest.approx((9 + 2 / 3) * 55.6137290, rel=1e-6)
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
    # Evaluation: 11 models x 12,149 items x (1,000 + 256) tokens x 2N at 2% MFU = 5.1860 GPU-hours.
    ev = stage(plan, "evaluate")
    assert ev.gpu_hours == pytest.approx(3.3002072 * 11 / 7, rel=1e-6)
    # one evaluation job per model, running all nine benchmarks
    assert ev.jobs == {"fetch_benchmarks": 1, "normalize_benchmark": 9, "evaluate": 11}
    # Held-out loss: 11 models x (2 web ranges, 14.7e9 / 1002 tokens each, + 20,000 HQ documents x 200) x 2N
    # at 40% MFU.
    held = stage(plan, "held-out loss")
    held_tokens = 2 * 14.7e9 / 1002 + 20_000 * 200
    assert held.jobs == {"score_heldout": 11}
    assert held.gpu_hours == pytest.approx(11 * held_tokens * 2 * N / (H100 * 0.4) / 3600, rel=1e-6)
    assert plan.total_gpu_hours == pytest.approx((9 + 2 / 3) * 55.6137290 + 5.5633168 + 45.4182430 * WEB_SHARE
                                                 + sample_hours + assign_hours + 3.3002072 * 11 / 7 + held.gpu_hours
                                                 + stage(plan, "cluster levels").gpu_hours, rel=1e-6)
    # Disk: per-token files of 14.7e9 tokens: two fp16 losses, int32 leaf + fp16 distance (one tree: one
    # seed), 6 uint8 masks (random, excess_static, cluster, cluster_excess, cluster_filter, excess_smoothed).
    assert stage(plan, "assign").disk_bytes == pytest.approx(14.7e9 * WEB_SHARE * 6)
    assert stage(plan, "select tokens").disk_bytes == pytest.approx(14.7e9 * WEB_SHARE * 6)
    select = {"select_tokens": 6}  # one job per mask: random, excess_static, cluster, cluster_excess, cluster_filter, ...
    assert stage(plan, "select tokens").jobs == select
    assert stage(plan, "fit projection").memory_bytes == pytest.approx(8000 * 1000 * 2048 * 4)
    # every job of the DAG is in a stage (the report's tables and figures too, without costs)
    assert plan.jobs_per_rule() == REAL_JOBS and plan.total_jobs == 6103
    assert stage(plan, "report").gpu_hours == 0 and OTHER not in [s.name for s in plan.stages]


def test_costs_are_per_job_costs_times_the_dags_counts(real):
    """The DAG decides how often each rule runs: the same config with other counts scales each stage."""
    plan = make_plan(real, REAL_JOBS)
    twice = make_plan(real, {**REAL_JOBS, "train_cpt": 18, "score_heldout": 22})
    assert stage(twice, "train CPT").flops == pytest.approx(2 * stage(plan, "train CPT").flops, rel=1e-12)
    assert stage(twice, "held-out loss").gpu_hours == pytest.approx(2 * stage(plan, "held-out loss").gpu_hours)
    # without score_base, the score stage loses one of its two full passes (half of 45.418 h)
    no_base = stage(make_plan(real, {**REAL_JOBS, "score_base": 0}), "score")
    assert no_base.jobs == {"score_reference": 1000, "embed_sample": 1000}
    assert stage(plan, "score").gpu_hours - no_base.gpu_hours == pytest.approx(45.4182430 / 2 * WEB_SHARE, rel=1e-6)
    # a stage without jobs in the DAG is left out: no tree, no projection, clustering nor assignment
    tree_rules = {"embed_sample", "fit_projection", "cluster_level", "assign"}
    names = [s.name for s in make_plan(real, {r: n for r, n in REAL_JOBS.items() if r not in tree_rules}).stages]
    assert not {"fit projection", "cluster levels", "assign leaves"} & set(names)
    assert "score (reference / base loss)" in names


def test_each_seeds_tree_adds_its_clustering_and_search_not_a_pass(real):
    """clustering.trees: per_seed with two seeds: two trees' k-means levels and nearest-centroid searches,
    the union of two sample draws in embed_sample, but one forward pass per shard in assign."""
    two = {**real, "cpt": {**real["cpt"], "seeds": [1, 2]}}
    jobs = {**REAL_JOBS, "cluster_level": 8, "fit_projection": 2}
    one, both = make_plan(real, REAL_JOBS), make_plan(two, jobs)
    assert stage(both, "cluster levels").flops == pytest.approx(2 * stage(one, "cluster levels").flops, rel=1e-12)
    assert "2 tree(s)" in stage(both, "cluster levels").note
    search_one = 2.0 * 14.7e9 * WEB_SHARE * 16384 * 64
    assert stage(both, "assign").flops - stage(one, "assign").flops == pytest.approx(search_one, rel=1e-6)
    assert stage(both, "assign").disk_bytes == pytest.approx(14.7e9 * WEB_SHARE * 12)
    shared = {**two, "clustering": {**two["clustering"], "trees": "shared"}}
    assert stage(make_plan(shared, REAL_JOBS), "assign").flops == pytest.approx(stage(one, "assign").flops)
    sample_one = 0.5 * 2 * N * 1024 * 2049 * 1000
    assert stage(both, "score").flops - stage(one, "score").flops == pytest.approx(sample_one, rel=1e-6)


def test_a_rule_missing_from_the_stage_table_is_listed_not_dropped(real):
    plan = make_plan(real, {**REAL_JOBS, "new_rule": 3})
    last = plan.stages[-1]
    assert last.name == OTHER and last.jobs == {"new_rule": 3} and "not counted" in last.note
    assert plan.total_jobs == 6103 + 3 and "| other (no cost model) | new_rule x3 |" in render_markdown(plan)


def test_the_stage_table_holds_every_rule_of_the_workflow_once():
    staged = [rule for spec in STAGES for rule in spec.rules]
    assert len(staged) == len(set(staged)), "a rule in two stages"
    assert set(staged) == set(_rule_blocks()) - NOT_STAGES


def test_job_stats_table_is_parsed_without_all_and_total():
    output = """Building DAG of jobs...
Job stats:
job                 count
----------------  -------
tokenize               19
train_cpt               7
all                     1
total                  27

Reasons:
"""
    assert parse_job_stats(output) == {"tokenize": 19, "train_cpt": 7}
    with pytest.raises(ValueError, match="Job stats"):
        parse_job_stats("Nothing to be done.")


def test_clustering_cost_follows_the_resampling_settings(real, tmp_path):
    """cluster levels = per level a k-means fit on every point plus resampling_rounds fresh fits on the
    closest points, each with k-means++ seeding, Lloyd iterations and a search of every point."""
    plan = make_plan(real, REAL_JOBS, tmp_path)
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
    cheap = make_plan({**real, "clustering": {**real["clustering"], "levels": old}}, REAL_JOBS, tmp_path)
    assert stage(cheap, "cluster levels").flops < 0.15 * cl.flops


def test_detailed_flops_reuse_the_trainer_formula(real):
    real = {**real, "plan": {**real["plan"], "flops": "detailed"}}
    plan = make_plan(real, REAL_JOBS)
    per_token = train_flops_per_token(TINYLLAMA, 2048)
    # 6 x (N minus the 32,000 x 2,048 input embedding, a lookup) + 6 x 22 layers x 2,048 x 2,048 (attention)
    assert per_token == 6 * (N - 32000 * 2048) + 6 * 22 * 2048 * 2048
    assert stage(plan, "train CPT").flops == pytest.approx((9 + 2 / 3) * 14_999_879_680 * per_token)


def test_wall_clock_hours_use_the_configs_gpus(real):
    gpus = config_gpus(real)  # resources.<rule>: nodes x gpus per node
    assert gpus["train_cpt"] == 16 and gpus["train_reference"] == 8 and gpus["score_reference"] == 1
    assert "pretrain_base" not in gpus and "tokenize" not in gpus  # importing the HF base is CPU work
    plan = make_plan(real, REAL_JOBS, gpus_per_job=gpus)
    # 16 GPUs x 4 windows = 64 per forward pass, 8 micro-batches per rank: rho1 still ranks first.
    assert stage(plan, "train CPT").wall_hours == pytest.approx((9 + 2 / 3) / 9 * 55.6137290 / 16, rel=1e-6)
    sample_hours = 0.5 * 2 * N * 1024 * 2049 * 1000 / (H100 * 0.4) / 3600  # embed_sample, half depth
    assert stage(plan, "score").wall_hours == pytest.approx((45.4182430 * WEB_SHARE + sample_hours) / 1000, rel=1e-6)
    md = render_markdown(plan)
    assert "| train CPT variants | train_cpt x9 | yes |" in md and "1,100,048,384 parameters" in md
    # Evaluation: the GPU-hours spread over the evaluate jobs (one per model, 1 GPU each), not over the
    # CPU jobs of the stage, even where those are more (two variants: 4 models, 9 normalize jobs).
    two = make_plan({**real, "variants": ["ct", "cluster"]},
                    {"fetch_benchmarks": 1, "normalize_benchmark": 9, "evaluate": 4}, gpus_per_job=gpus)
    ev = stage(two, "evaluate")
    assert ev.jobs["evaluate"] == 4 and ev.jobs["normalize_benchmark"] == 9 and gpus["evaluate"] == 1
    assert ev.wall_hours == pytest.approx(ev.gpu_hours / 4, rel=1e-9)


def test_the_plan_takes_the_gpus_per_job_from_the_config(real):
    """Without gpus_per_job the plan uses the config's job sizes: the real config's 16 GPUs per CPT job;
    the smoke override's CPU jobs make its GPU stages CPU stages, in GPU-equivalent hours."""
    jobs = {"train_reference": 1, "train_cpt": 9}
    assert stage(make_plan(real, jobs), "train CPT").wall_hours == pytest.approx(
        stage(make_plan(real, jobs, gpus_per_job=config_gpus(real)), "train CPT").wall_hours)
    smoke = load_config([REPO / "config/rho1-tinyllama.yaml", REPO / "config/rho1-smoke.yaml"], REPO / "config/schema.yaml")
    assert config_gpus(smoke) == {}
    cpt = stage(make_plan(smoke, jobs), "train CPT")
    assert not cpt.gpu and "CPU (no resources.<rule>.gpus)" in cpt.note and cpt.wall_hours is None


def test_rho1_ranking_pass_and_pipeline_bubble(real):
    gpus = {"train_cpt": 16, "train_reference": 8}
    one_pass = {**real, "cpt": {**real["cpt"], "training": {**real["cpt"]["training"], "micro_batch": 32}}}
    cpt = stage(make_plan(one_pass, REAL_JOBS, gpus_per_job=gpus), "train CPT")  # 16 x 32 = 512: one micro-batch
    assert cpt.gpu_hours == pytest.approx(9 * 55.6137290, rel=1e-6) and "forward-only" not in cpt.note
    # 2 stages on 8 GPUs: 4 data-parallel pipelines x 4 windows, 32 micro-batches per step; the 1F1B
    # warm-up and drain leave the stages idle 1 of 33 micro-batch slots.
    piped = {**real, "reference": {**real["reference"], "training": {**real["reference"]["training"],
                                                                       "pipeline_parallel": 2}}}
    ref = stage(make_plan(piped, REAL_JOBS, gpus_per_job=gpus), "train reference")
    assert ref.gpu_hours == pytest.approx(5.5633168 * 33 / 32, rel=1e-6)


def test_token_counts_are_measured_once_shards_exist(real, tmp_path):
    web = tmp_path / "shards/web"
    web.mkdir(parents=True)
    for i in range(10):  # 10 of 1000 shards, 7,000 windows of 2,049 tokens each
        (web / f"{i:05d}.json").write_text(json.dumps({"n_windows": 7000, "seq_len": 2049}))
    tokens, sources = token_counts(real, tmp_path)
    assert tokens["web"] == 7000 * 2049 * 1000 and sources["web"] == "measured on 10 of 1000 shards"
    assert tokens["hq"] == pytest.approx(5.35e8) and sources["hq"].startswith("config estimate")


# --- the DAG's counts (Snakemake dry runs: slow) -------------------------------------------------------

TINY_EDITS = {
    "tiny": lambda cfg: None,
    "fused-pass": lambda cfg: cfg["scoring"].update(fused_pass=True, sample_windows_per_shard=8),
    "two-variants": lambda cfg: cfg.update(variants=["ct", "cluster"]),
}


@pytest.fixture(scope="module")
def tiny_dags(tmp_path_factory) -> dict[str, tuple[dict, dict[str, int]]]:
    """Config and dry-run job counts of the tiny default and each of TINY_EDITS."""
    work = copy_workflow(tmp_path_factory.mktemp("wf"))
    out = {}
    for name, edit in TINY_EDITS.items():
        config = load_config([work / "config/config.yaml"], work / "config/schema.yaml")
        edit(config)
        out[name] = config, config_job_counts(config, work)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY_EDITS))
def test_the_plans_stages_cover_every_rule_of_the_dry_run(tiny_dags, name):
    config, jobs = tiny_dags[name]
    plan = make_plan(config, jobs)
    assert plan.jobs_per_rule() == jobs and OTHER not in [s.name for s in plan.stages]
    assert plan.total_jobs == sum(jobs.values())


@pytest.mark.slow
def test_two_variants_scale_cpt_flops_by_their_runs(tiny_dags):
    """variants: [ct, cluster] trains 2 of the 9 variants (x 3 seeds each): 2/9 of the CPT FLOPs, none of
    them an SLM row with a ranking pass; the tree stages stay (cluster uses it), the SLM's do not."""
    (tiny, tiny_jobs), (two, two_jobs) = tiny_dags["tiny"], tiny_dags["two-variants"]
    assert tiny_jobs["train_cpt"] == 27 and two_jobs["train_cpt"] == 6
    full, small = make_plan(tiny, tiny_jobs), make_plan(two, two_jobs)
    assert stage(small, "train CPT").flops == pytest.approx(2 / 9 * stage(full, "train CPT").flops, rel=1e-12)
    assert "cluster levels" in [s.name for s in small.stages]
    assert stage(small, "score").jobs.get("score_base", 0) == 0 < stage(full, "score").jobs["score_base"]


@pytest.mark.slow
def test_cli_writes_markdown_and_json(tmp_path, capsys):
    work = copy_workflow(tmp_path / "wf")
    out = tmp_path / "plan"
    assert main(["--configfile", str(work / "config/config.yaml"), "--workflow", str(work), "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["run"] == "tiny" and data["jobs_per_rule"]["train_cpt"] == 27 and data["jobs_per_rule"]["tokenize"] == 9
    assert out.with_suffix(".md").read_text() == capsys.readouterr().out


@pytest.mark.slow
def test_a_failing_dry_run_shows_snakemakes_error(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    (work / "broken.yaml").write_text("run: broken\n")  # a configfile is complete: this one is not
    with pytest.raises(DryRunError, match="required property"):
        dag_job_counts([work / "broken.yaml"], work)
