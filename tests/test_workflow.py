"""The tiny default workflow, end to end: every stage's files against their contract, the tables and
README it writes, partial reruns (``snakemake -n`` after a config change) and config validation."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from rhocluster.corpus.labels import LABELS, NO_LABEL
from rhocluster.data.shards import Shard
from rhocluster.reporting.readme import END, START
from rhocluster.reporting.reproduce import parse_cell
from rhocluster.workflow.variants import cpt_models
from tests.conftest import REPO, change_config, copy_workflow, run_snakemake

pytestmark = pytest.mark.slow

R = "results/tiny"
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
WEB = [f"{i:05d}" for i in range(CONFIG["data"]["synthetic"]["web_shards"])]
MODELS = ["base", "reference", *CONFIG["variants"]]
BENCHMARKS = CONFIG["evaluation"]["benchmarks"]
RATIO = CONFIG["selection"]["budget"]
TREES = [f"s{i}" for i in range(len(CONFIG["cpt"]["seeds"]))]  # clustering.trees: per_seed


def web_shard(run: Path, shard: str) -> Shard:
    return Shard(run / R / "shards/web" / shard)


# --- stage contracts -----------------------------------------------------------------------------


def test_shards_are_fixed_windows_with_labels(tiny_run):
    for split, n in [("web", len(WEB)), ("hq", 1), ("pretrain", CONFIG["data"]["synthetic"]["pretrain_shards"])]:
        for i in range(n):
            shard = Shard(tiny_run / R / "shards" / split / f"{i:05d}")
            tokens = shard.windows()
            assert tokens.shape == (shard.meta.n_windows, CONFIG["data"]["seq_len"] + 1)
            assert shard.meta.dtype == "uint16" and tokens.max() < CONFIG["model"]["vocab_size"]
            # Documents are framed as <s> ... </s>: BOS and EOS alternate along the token stream.
            flat = tokens.ravel()
            specials = flat[(flat == 1) | (flat == 2)]
            assert len(specials) >= 2 and not np.any(specials[1:] == specials[:-1])
            assert shard.meta.has_labels == (split == "web"), "only the web corpus carries ground truth"
            if split == "web":
                labels = shard.labels()
                assert labels.shape == tokens.shape and labels.dtype == np.uint8
    # Web documents carry ground-truth labels for every token; each label occurs.
    labels = web_shard(tiny_run, WEB[0]).labels()
    assert set(range(len(LABELS))) <= set(np.unique(labels).tolist()) <= set(range(len(LABELS))) | {NO_LABEL}


def test_reference_losses_align_with_windows(tiny_run):
    for shard in WEB:
        windows = web_shard(tiny_run, shard).shape
        for model in ("reference", "base"):
            path = tiny_run / R / "scores" / model / f"{shard}.loss.npy"
            if model == "base" and not path.exists():
                continue  # only cluster_excess needs base losses
            loss = np.load(path)
            assert loss.shape == windows and loss.dtype == np.float16
            assert np.isnan(loss[:, 0]).all(), "position 0 is never a target"
            assert np.isfinite(loss[:, 1:]).all() and (loss[:, 1:] >= 0).all()


@pytest.mark.parametrize("tree", TREES)
def test_embedding_sample_matches_the_projection_and_the_shards(tiny_run, tree):
    from rhocluster.scoring.projection import Projection

    emb = tiny_run / R / "embeddings" / tree
    sample = np.load(emb / "sample.npy")
    dim = CONFIG["scoring"]["projection"]["dim"]
    assert sample.dtype == np.float32 and sample.shape[1] == dim and np.isfinite(sample).all()
    projection = Projection.load(emb / "projection.npz")
    assert projection.out_dim(CONFIG["model"]["hidden_size"]) == dim
    assert np.load(tiny_run / R / "clusters" / tree / "level_1/centroids.npy").shape[1] == dim
    with np.load(emb / "sample_index.npz") as index:
        shard, position = index["shard"], index["position"]
    assert shard.shape == position.shape == (sample.shape[0],)
    assert 0 < sample.shape[0] <= CONFIG["scoring"]["sample_tokens_per_shard"] * len(WEB)
    assert set(np.unique(shard)) <= set(range(len(WEB)))
    for i, name in enumerate(WEB):
        windows, seq = web_shard(tiny_run, name).shape
        pos = position[shard == i]
        assert len(np.unique(pos)) == len(pos), "a token is sampled once"
        assert ((pos >= 0) & (pos < windows * seq)).all() and (pos % seq != 0).all(), "targets only (not position 0)"


def test_every_seed_has_its_own_tree(tiny_run):
    """clustering.trees: per_seed: a tree per training seed, each from its own sample draw and k-means
    seeds, so the trees (and the cluster rows' masks) differ between seeds."""
    assert CONFIG["clustering"]["trees"] == "per_seed" and len(TREES) == len(CONFIG["cpt"]["seeds"]) > 1
    positions = [np.load(tiny_run / R / "embeddings" / t / "sample_index.npz")["position"] for t in TREES]
    centroids = [np.load(tiny_run / R / "clusters" / t / "level_1/centroids.npy") for t in TREES]
    for i in range(1, len(TREES)):
        assert not np.array_equal(positions[0], positions[i]), "each tree samples its own tokens"
        assert not np.allclose(centroids[0], centroids[i]), "each tree has its own centroids"
    masks = [np.load(tiny_run / R / "masks" / m / f"{WEB[0]}.npy") for m in ("cluster_excess", "cluster_excess.s1")]
    assert not np.array_equal(*masks), "a ranked balanced mask follows its seed's tree"


@pytest.mark.parametrize("tree", TREES)
def test_cluster_tree_is_consistent(tiny_run, tree):
    """level_l/parents.npy maps each input point of level l (level 1: sampled tokens; level l > 1:
    the centroids of level l-1) to its level-l cluster; sizes count sampled tokens at every level."""
    levels = CONFIG["clustering"]["levels"]
    n_inputs = None
    leaf_to_top = None
    for l, spec in enumerate(levels, start=1):
        d = tiny_run / R / "clusters" / tree / f"level_{l}"
        centroids, parents, sizes = (np.load(d / f) for f in ("centroids.npy", "parents.npy", "sizes.npy"))
        summary = json.loads((d / "summary.json").read_text())
        assert centroids.shape[0] == spec["k"] == sizes.shape[0] == summary["k"]
        assert np.isfinite(centroids).all() and summary["inertia"] >= 0
        assert parents.dtype == np.int32 and parents.min() >= 0 and parents.max() < spec["k"]
        if l == 1:
            n_inputs = parents.shape[0]
            np.testing.assert_array_equal(sizes, np.bincount(parents, minlength=spec["k"]))
            leaf_to_top = np.arange(spec["k"])
            leaf_sizes = sizes
        else:
            assert parents.shape == (levels[l - 2]["k"],)
            leaf_to_top = parents[leaf_to_top]  # one ancestor per level for every leaf
            np.testing.assert_array_equal(sizes, np.bincount(leaf_to_top, weights=leaf_sizes, minlength=spec["k"]))
        assert sizes.sum() == n_inputs, f"level {l} sizes must add up to the sample"


@pytest.mark.parametrize("tree", TREES)
def test_leaf_ids_cover_every_target(tiny_run, tree):
    k1 = CONFIG["clustering"]["levels"][0]["k"]
    for shard in WEB:
        leaf = np.load(tiny_run / R / "clusters" / tree / "assign" / f"{shard}.leaf.npy")
        assert leaf.shape == web_shard(tiny_run, shard).shape and leaf.dtype == np.int32
        assert (leaf[:, 0] == -1).all()
        assert leaf[:, 1:].min() >= 0 and leaf[:, 1:].max() < k1


@pytest.mark.parametrize("variant", ["cluster", "cluster_excess", "random", "excess_static", "cluster_filter", "excess_smoothed"])
def test_masks_keep_the_configured_ratio(tiny_run, variant):
    kept = total = 0
    for shard in WEB:
        mask = np.load(tiny_run / R / "masks" / variant / f"{shard}.npy")
        assert mask.shape == web_shard(tiny_run, shard).shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1} and not mask[:, 0].any()
        kept += int(mask[:, 1:].sum())
        total += mask[:, 1:].size
    # exactly the budget over the corpus; the random control rounds it in every shard (its draws are
    # per shard), so it may be off by less than one token per shard
    slack = len(WEB) if variant == "random" else 0
    assert abs(kept - round(RATIO * total)) <= slack, "every static mask keeps its budget"
    summary = json.loads((tiny_run / R / "masks" / variant / "summary.json").read_text())
    assert summary["kept"] == kept and summary["tokens"] == total


def test_every_model_is_trained_and_exported(tiny_run):
    for model in MODELS:
        d = tiny_run / R / "models" / model
        hf = d / "hf"
        assert (hf / "config.json").exists() and list(hf.glob("*.safetensors"))
        if model == "base" and CONFIG["base"]["source"] != "pretrain":
            continue
        log = [json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()]
        assert log and all(np.isfinite(r["loss"]) for r in log)
        summary = json.loads((d / "summary.json").read_text())
        assert summary["steps"] == log[-1]["step"]


def test_training_keeps_the_selected_fraction(tiny_run):
    """ct trains on every target; masked variants and rho1 on the configured budget."""
    for variant in CONFIG["variants"]:
        log = [json.loads(line) for line in (tiny_run / R / "models" / variant / "train_log.jsonl").read_text().splitlines()]
        kept = np.mean([r["kept_fraction"] for r in log])
        expected = 1.0 if variant == "ct" else RATIO
        assert abs(kept - expected) < 0.05, (variant, kept)


def test_every_model_is_evaluated_on_every_benchmark(tiny_run):
    n_items = CONFIG["evaluation"]["tiny_items_per_benchmark"]
    for model in MODELS:
        for bench in BENCHMARKS:
            summary = json.loads((tiny_run / R / "eval" / model / f"{bench}.json").read_text())
            preds = (tiny_run / R / "eval" / model / f"{bench}.predictions.jsonl").read_text().splitlines()
            assert summary["n"] == len(preds) == n_items
            verdicts = [json.loads(p)["verdict"] for p in preds]
            assert summary["correct"] == sum(verdicts)
            assert summary["accuracy"] == pytest.approx(100 * sum(verdicts) / n_items)


# --- tables and README ---------------------------------------------------------------------------


def markdown_rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows[cells[0]] = cells[1:]
    return rows


def test_results_table_has_one_row_per_model(tiny_run):
    rows = markdown_rows((tiny_run / R / "tables/results.md").read_text())
    for model in MODELS:
        assert any(name == model or name.startswith(f"{model} ") for name in rows), f"no row for {model}"
    # The numbers come from the evaluation files: recompute the ct row's average.
    accs = [json.loads((tiny_run / R / "eval/ct" / f"{b}.json").read_text())["accuracy"] for b in BENCHMARKS]
    ct_row = next(cells for name, cells in rows.items() if name == "ct" or name.startswith("ct "))
    assert float(ct_row[len(BENCHMARKS)]) == pytest.approx(np.mean(accs), abs=0.051)


def test_label_table_reports_kept_fraction_per_label(tiny_run):
    rows = markdown_rows((tiny_run / R / "tables/labels.md").read_text())
    for variant in ("cluster", "cluster_excess", "random", "excess_static", "cluster_slm"):
        cells = next(c for name, c in rows.items() if name == variant)
        fractions = [parse_cell(c) for c in cells[: len(LABELS)]]  # mean [95% interval] over seeds
        assert all(0 <= f.low <= f.value <= f.high <= 100 for f in fractions)
    # ct learns from every token; the random mask keeps each label at about the budget.
    ct = json.loads((tiny_run / R / "models/ct/summary.json").read_text())
    assert all(f == 1.0 for f in ct["kept_fraction_by_label"].values() if f is not None)
    random_run = json.loads((tiny_run / R / "models/random/summary.json").read_text())
    for label, fraction in random_run["kept_fraction_by_label"].items():
        n = random_run["tokens_by_label"][label]
        if n >= 1000:  # binomial sd of the fraction <= 0.016 at n = 1000: 4 sd
            assert abs(fraction - RATIO) < 4 * (RATIO * (1 - RATIO) / n) ** 0.5, (label, fraction, n)


def test_readme_table_is_written_between_markers(tiny_run):
    readme = (tiny_run / "README.md").read_text()
    original = (REPO / "README.md").read_text()
    before, after = original.split(START)[0], original.split(END)[1]
    assert readme.startswith(before + START) and readme.endswith(END + after), "text outside the markers changed"
    body = readme.split(START)[1].split(END)[0]
    results = (tiny_run / R / "tables/results.md").read_text()
    assert results.strip() in body
    page = (tiny_run / "docs" / "results.md").read_text()  # report.readme_page, linked from the block
    assert "(docs/results.md)" in body and (tiny_run / R / "tables/significance.md").read_text().strip() in page


# --- partial reruns ------------------------------------------------------------------------------


def planned_jobs(workdir: Path) -> dict[str, int]:
    """Rule -> number of jobs a dry run in ``workdir`` would execute."""
    proc = run_snakemake(workdir, "-n", timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    if "Nothing to be done" in proc.stdout:
        return {}
    table = proc.stdout.split("Job stats:")[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


@pytest.fixture
def rerun_dir(tiny_run, tmp_path) -> Path:
    """A disposable copy of the finished run, so dry runs cannot disturb other tests."""
    work = tmp_path / "run"
    copy_workflow(work)
    for name in ("results", "logs", "timings", ".snakemake"):
        shutil.copytree(tiny_run / name, work / name, symlinks=True, ignore=shutil.ignore_patterns("checkpoints"))
    return work


def test_finished_run_is_up_to_date(rerun_dir):
    change_config(rerun_dir, lambda c: None)  # rewriting the same values changes nothing
    assert planned_jobs(rerun_dir) == {}


# Rules downstream of the tables and of the training logs: they rerun whenever anything upstream does.
REPORT_RULES = {"tables", "heldout_tables", "significance", "figure_accuracy", "figure_training", "figure_clusters", "update_readme", "all"}


@pytest.mark.parametrize(("level", "k"), [(1, 48), (2, 12)], ids=["level-1", "level-2"])
def test_level_change_reruns_only_levels_at_or_above_it(rerun_dir, level, k):
    """Levels >= l of every seed's tree, the masks and the cluster variants rerun; level 1 also
    reassigns every shard (leaf ids are level-1 clusters; one job per shard places it in every tree).
    Never tokenization, scoring, the reference model or the ct/rho1 rows."""

    def edit(cfg):
        cfg["clustering"]["levels"][level - 1]["k"] = k

    change_config(rerun_dir, edit)
    jobs = planned_jobs(rerun_dir)
    runs = cpt_models(CONFIG)
    # level 1 moves every leaf id: every row using the tree reruns; a higher level moves only the rows
    # reading the levels (balanced masks, grouped SLM), not cluster_filter / excess_smoothed (leaves only)
    tree = [
        m for m in runs.values()
        if m.variant.uses_tree and (level == 1 or "levels" in m.variant.reads or m.variant.group_level)
    ]
    first = [m for m in tree if m.replicate == 0]  # the models the benchmarks evaluate
    masks = {m.mask_key for m in tree if m.variant.mask}  # every tree mask per seed: the seeds' trees differ
    n_seeds = len(CONFIG["cpt"]["seeds"])
    assert len(first) == (5 if level == 1 else 3) and len(tree) == len(first) * n_seeds
    assert len(masks) == (4 if level == 1 else 2) * n_seeds
    expected = {
        "cluster_level": n_seeds * (len(CONFIG["clustering"]["levels"]) - (level - 1)),
        "assign": len(WEB) if level == 1 else None,
        "select_tokens": len(masks),
        "train_cpt": len(tree),
        "export_hf": len(first),
        "evaluate": len(first),  # one job per model, every benchmark
        "score_heldout": len(tree),
    }
    assert {rule: jobs.get(rule) for rule in expected} == expected
    others = set(jobs) - set(expected) - REPORT_RULES - {"inspect_clusters"}
    assert not others, f"a level-{level} change must not rerun {others}"


def test_report_builds_with_every_category(rerun_dir):
    proc = run_snakemake(rerun_dir, "--report", "report.zip", timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    import zipfile

    with zipfile.ZipFile(rerun_dir / "report.zip") as archive:
        names = archive.namelist()
        text = "\n".join(
            archive.read(n).decode("utf-8", "replace") for n in names if n.endswith((".html", ".js", ".json"))
        )
    for item in ("accuracy.png", "loss.png", "kept_fraction.png", "cluster_sizes.png", "examples.html", "results.csv"):
        assert any(n.endswith(item) for n in names), f"{item} not in the report"
    for category in ("Results", "Training", "Clustering", "Tables"):
        assert category in text, category
    assert "percentile" in text  # a rendered caption (report/accuracy.rst)


def test_evaluation_change_reruns_only_evaluation_and_tables(rerun_dir):
    def edit(cfg):
        cfg["evaluation"]["max_gen_toks"] = 32

    change_config(rerun_dir, edit)
    jobs = planned_jobs(rerun_dir)
    assert jobs.pop("evaluate") == len(MODELS)  # one job per model, every benchmark
    assert set(jobs) <= REPORT_RULES - {"figure_training", "figure_clusters"}, jobs


def test_every_seed_is_trained_and_scored_on_held_out_text(tiny_run):
    """cpt.seeds: every variant once per seed (its seed in the training config); every model scored on
    the held-out splits; the held-out table has one row per variant, averaging its seeds."""
    runs = cpt_models(CONFIG)
    assert len(runs) == len(CONFIG["variants"]) * len(CONFIG["cpt"]["seeds"])
    for name, run in runs.items():
        summary = json.loads((tiny_run / R / "models" / name / "summary.json").read_text())
        assert summary["config"]["seed"] == run.seed
    for name in ["base", "reference", *runs]:
        for split in ("heldout_web", "heldout_hq"):
            loss = np.load(tiny_run / R / "heldout" / name / split / "00000.loss.npy")
            assert np.isfinite(loss[:, 1:]).all() and np.isnan(loss[:, 0]).all()
    a, b = (np.load(tiny_run / R / "heldout" / m / "heldout_web/00000.loss.npy") for m in ("ct", "ct.s1"))
    assert not np.array_equal(a, b), "another seed trains another model"
    rows = markdown_rows((tiny_run / R / "tables/heldout.md").read_text().split("Paired differences")[0])
    for variant in CONFIG["variants"]:
        assert rows[variant][-1] == str(len(CONFIG["cpt"]["seeds"]))
    assert rows["base"][-1] == rows["reference"][-1] == "1"
