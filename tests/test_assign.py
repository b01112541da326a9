"""assign: leaf ids equal brute-force nearest centroids of the projected hidden states (both positions);
a sampled token's representation in the sample is the one assign computes for it; the fused reference
loss equals score_shard's; memory does not grow with the shard; bad input names the shard."""

from __future__ import annotations

import gc
import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from rhocluster.clustering.assign import assign_shard
from rhocluster.data.shards import Shard, write_shard
from rhocluster.scoring.forward import load_causal_lm
from rhocluster.scoring.projection import Projection, fit_projection, fit_projection_files
from rhocluster.scoring.score import score_shard
from tests.test_scoring import SEQ, VOCAB, hf_states, make_model, make_shards, make_tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("assign")
    tok = make_tokenizer(root / "tokenizer")
    model = make_model(root / "model", seed=5)
    shards = make_shards(root / "shards", tok, n_shards=1, docs=80, seed=2)
    windows = Shard(shards[0]).windows()
    # slot t's representation, row t - 1: the default (middle layer, read) and the final predict state
    states = {
        ("middle", "read"): hf_states(model, windows, "middle", "read"),
        (-1, "predict"): hf_states(model, windows, -1, "predict"),
    }
    default = states["middle", "read"].reshape(-1, 32)
    rng = np.random.default_rng(0)
    proj = fit_projection(default[rng.choice(len(default), 400, replace=False)], "pca", 8, "l2", 0)
    proj.save(root / "projection.npz")  # records no space: applied to either space below
    x = proj.apply(default)
    np.save(root / "centroids.npy", x[rng.choice(len(x), 12, replace=False)] + rng.normal(0, 0.01, (12, 8)).astype(np.float32))
    return {"root": root, "model": model, "shard": shards[0], "states": states, "projection": proj}


def brute_force(x: np.ndarray, c: np.ndarray, spherical: bool) -> tuple[np.ndarray, np.ndarray]:
    x, c = x.astype(np.float64), c.astype(np.float64)
    if spherical:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
        d = 1.0 - x @ c.T
    else:
        d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    return d.argmin(1), d


@pytest.mark.parametrize(("layer", "position"), [("middle", "read"), (-1, "predict")])
@pytest.mark.parametrize("spherical", [False, True])
def test_leaf_ids_equal_brute_force_nearest_centroid(world, tmp_path, spherical, layer, position):
    root = world["root"]
    stats = assign_shard(
        world["model"], world["shard"], root / "projection.npz", root / "centroids.npy",
        tmp_path / "leaf.npy", tmp_path / "dist.npy", batch_size=5, spherical=spherical, layer=layer, position=position,
    )
    leaf, dist = np.load(tmp_path / "leaf.npy"), np.load(tmp_path / "dist.npy")
    shape = Shard(world["shard"]).shape
    assert leaf.shape == dist.shape == shape and leaf.dtype == np.int32 and dist.dtype == np.float16
    assert (leaf[:, 0] == -1).all() and np.isnan(dist[:, 0]).all()
    x = world["projection"].apply(world["states"][layer, position].reshape(-1, 32))
    ids, d = brute_force(x, np.load(root / "centroids.npy"), spherical)
    got = leaf[:, 1:].reshape(-1)
    rows = np.arange(len(got))
    # identical up to float32 near-ties (the chosen centroid is then within 1e-5 of the best)
    assert (got == ids).mean() > 0.999
    np.testing.assert_array_less(d[rows, got] - d[rows, ids], 1e-5)
    np.testing.assert_allclose(dist[:, 1:].reshape(-1).astype(np.float64), d[rows, ids], rtol=2e-3, atol=2e-3)
    assert stats["n_tokens"] == shape[0] * (SEQ - 1)


@pytest.mark.parametrize("position", ["read", "predict"])
def test_fused_reference_loss_equals_score_shard(world, tmp_path, position):
    root = world["root"]
    assign_shard(
        world["model"], world["shard"], root / "projection.npz", root / "centroids.npy",
        tmp_path / "leaf.npy", tmp_path / "dist.npy", out_ref_loss=tmp_path / "ref.npy", batch_size=6,
        layer=1, position=position,
    )
    score_shard(world["model"], world["shard"], tmp_path / "loss.npy", batch_size=6)
    assert (tmp_path / "ref.npy").read_bytes() == (tmp_path / "loss.npy").read_bytes()
    # and the leaf ids do not depend on whether the loss is computed in the same pass
    assign_shard(
        world["model"], world["shard"], root / "projection.npz", root / "centroids.npy",
        tmp_path / "leaf2.npy", tmp_path / "dist2.npy", batch_size=6, layer=1, position=position,
    )
    assert (tmp_path / "leaf.npy").read_bytes() == (tmp_path / "leaf2.npy").read_bytes()


def repeat_shard(src: Path, dest: Path, times: int) -> Path:
    s = Shard(src)
    write_shard(dest, np.tile(s.windows(), (times, 1)), None, VOCAB, s.meta.n_documents * times, 0)
    return dest


def test_memory_stays_flat_as_the_shard_grows(world, tmp_path):
    """Python-side peak allocation (numpy) of assign is the same for 2x and 16x the windows: nothing
    proportional to the shard is held (a whole [W, S] int32 + float16 would add 6 bytes per token)."""
    root = world["root"]
    model = load_causal_lm(world["model"])
    peaks, tokens = [], []
    for times in (1, 2, 16):  # the first run only warms up (one-time allocations of torch/transformers)
        prefix = repeat_shard(world["shard"], tmp_path / f"x{times}", times)
        tokens.append(Shard(prefix).n_windows * SEQ)
        gc.collect()
        tracemalloc.start()
        assign_shard(
            world["model"], prefix, root / "projection.npz", root / "centroids.npy",
            tmp_path / f"l{times}.npy", tmp_path / f"d{times}.npy", batch_size=16, model=model,
        )
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # Cyclic garbage of transformers' per-call objects adds a little per batch until the collector
    # runs; holding the outputs whole would add 6 bytes per extra token at least.
    growth = peaks[2] - peaks[1]
    assert growth < 0.5 * 6 * (tokens[2] - tokens[1]), (peaks, tokens)


# --- the sample and the assignment live in one space -----------------------------------------------


@pytest.mark.parametrize(("layer", "position"), [("middle", "read"), (-1, "predict"), (-1, "read"), (1, "predict")])
def test_sampled_token_is_assigned_its_own_sample_representation(world, tmp_path, layer, position):
    """Every sampled token becomes a centroid (its projected sample row); assign, with the same layer
    and position, finds each sampled token at distance ~0 from its own row: the representation assign
    computes for a token equals the one in the sample. The other position lands far from it."""
    root, prefix = world["root"], world["shard"]
    score_shard(world["model"], prefix, None, tmp_path / "s.npz", batch_size=7, layer=layer,
                position=position, sample_tokens=80, seed=4)
    fit_projection_files([tmp_path / "s.npz"], tmp_path / "sample.npy", tmp_path / "index.npz", tmp_path / "p.npz",
                         kind="pca", dim=8, normalize="l2", seed=0)
    sample = np.load(tmp_path / "sample.npy")
    np.save(tmp_path / "c.npy", sample)
    with np.load(tmp_path / "index.npz") as z:
        pos = z["position"]
    assign_shard(world["model"], prefix, tmp_path / "p.npz", tmp_path / "c.npy", tmp_path / "leaf.npy",
                 tmp_path / "dist.npy", batch_size=5, layer=layer, position=position)
    leaf = np.load(tmp_path / "leaf.npy").reshape(-1)[pos]
    dist = np.load(tmp_path / "dist.npy").reshape(-1)[pos].astype(np.float32)
    assert dist.max() < 1e-3, dist.max()
    # its own row, up to tokens whose representations coincide (same token, same context)
    own = leaf == np.arange(len(pos))
    assert own.mean() > 0.9
    np.testing.assert_allclose(sample[leaf[~own]], sample[~own], atol=2e-2)
    # the other position, with the space check bypassed (a projection recording no space), is far off
    other = "predict" if position == "read" else "read"
    with pytest.raises(ValueError, match=rf"at position '{other}', but the projection was fitted on .* at '{position}'"):
        assign_shard(world["model"], prefix, tmp_path / "p.npz", tmp_path / "c.npy", tmp_path / "l2.npy",
                     tmp_path / "d2.npy", layer=layer, position=other)
    p = Projection.load(tmp_path / "p.npz")
    Projection(p.normalize, p.mean, p.matrix).save(tmp_path / "p_plain.npz")
    assign_shard(world["model"], prefix, tmp_path / "p_plain.npz", tmp_path / "c.npy", tmp_path / "l2.npy",
                 tmp_path / "d2.npy", layer=layer, position=other)
    assert np.median(np.load(tmp_path / "d2.npy").reshape(-1)[pos].astype(np.float32)) > 100 * max(dist.max(), 1e-5)


# --- bad input ------------------------------------------------------------------------------------


def test_shard_disagreeing_with_its_index_fails_naming_it(world, tmp_path):
    prefix = tmp_path / "00003"
    for suffix in (".bin", ".idx", ".labels.npy", ".json"):
        shutil.copy(f"{world['shard']}{suffix}", f"{prefix}{suffix}")
    meta = json.loads(Path(f"{prefix}.json").read_text())
    meta["seq_len"] += 1
    Path(f"{prefix}.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"shard {prefix}: window 0 has {SEQ} tokens, expected {SEQ + 1}"):
        assign_shard(
            world["model"], prefix, world["root"] / "projection.npz", world["root"] / "centroids.npy",
            tmp_path / "l.npy", tmp_path / "d.npy",
        )
    assert not (tmp_path / "l.npy").exists()


def test_centroid_width_mismatch_names_both(world, tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"projected width 8 .* != centroid width 5"):
        assign_shard(
            world["model"], world["shard"], world["root"] / "projection.npz", tmp_path / "c.npy",
            tmp_path / "l.npy", tmp_path / "d.npy",
        )
    Projection("l2", None, None).save(tmp_path / "identity.npz")  # identity keeps the model width 32
    with pytest.raises(ValueError, match="projected width 32"):
        assign_shard(
            world["model"], world["shard"], tmp_path / "identity.npz", tmp_path / "c.npy",
            tmp_path / "l.npy", tmp_path / "d.npy",
        )


def test_nan_hidden_states_fail_naming_shard_and_layer_and_leave_no_output(world, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(world["model"]))
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan_model")
    prefix = world["shard"]
    with pytest.raises(ValueError, match=rf"shard {prefix}: NaN/inf in the hidden states of layer middle \(read\)"):
        assign_shard(
            tmp_path / "nan_model", prefix, world["root"] / "projection.npz", world["root"] / "centroids.npy",
            tmp_path / "leaf.npy", tmp_path / "dist.npy", batch_size=5,
        )
    assert not (tmp_path / "leaf.npy").exists() and not (tmp_path / "dist.npy").exists()


# --- the fused pass in the workflow ---------------------------------------------------------------


def planned(workdir: Path) -> dict[str, int]:
    """Rule -> jobs of a dry run of the whole workflow in ``workdir``."""
    import re

    from tests.conftest import run_snakemake

    proc = run_snakemake(workdir, "-n", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs = {}
    for line in proc.stdout.split("Job stats:")[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        jobs[m.group(1)] = int(m.group(2))
    return jobs


def test_fused_pass_drops_the_full_reference_scoring_without_rho1(tmp_path):
    from tests.conftest import change_config, copy_workflow

    work = copy_workflow(tmp_path / "wf")

    def fused(cfg):
        cfg["scoring"]["fused_pass"] = True
        cfg["scoring"]["sample_windows_per_shard"] = 100
        # without the rows that read score_reference's loss: the SLM rows and the corpus-wide ranking
        cfg["variants"] = [v for v in cfg["variants"] if v not in ("rho1", "cluster_slm", "excess_static")]

    change_config(work, fused)
    jobs = planned(work)
    n_web = yaml_web_shards(work)
    assert "score_reference" not in jobs  # no full reference pass besides assign's
    assert jobs["embed_sample"] == jobs["assign"] == n_web and jobs["score_base"] == n_web


def yaml_web_shards(work: Path) -> int:
    import yaml

    return yaml.safe_load((work / "config/config.yaml").read_text())["data"]["synthetic"]["web_shards"]


# --- the representation in the workflow: ablation configs and what a change reruns ----------------

ABLATIONS = sorted((Path(__file__).resolve().parents[1] / "config/ablation").glob("representation-*.yaml"))


def _merged(*paths: Path) -> dict:
    """Snakemake's merge of several --configfile files (later keys override, mappings merged)."""
    import yaml

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    cfg: dict = {}
    for p in paths:
        cfg = merge(cfg, yaml.safe_load(p.read_text()))
    return cfg


def test_ablation_configs_validate_with_their_own_runs():
    from snakemake.utils import validate

    repo = Path(__file__).resolve().parents[1]
    assert len(ABLATIONS) >= 4
    runs = set()
    for path in ABLATIONS:
        cfg = _merged(repo / "config/config.yaml", path)
        validate(cfg, str(repo / "config/schema.yaml"))
        assert cfg["variants"] == ["ct", "cluster"] and cfg["report"]["update_readme"] is False, path
        assert cfg["scoring"]["position"] in ("read", "predict") and cfg["run"] != "tiny", path
        runs.add(cfg["run"])
    assert len(runs) == len(ABLATIONS)  # separate results directories
    layers = {(_merged(p)["scoring"]["layer"], _merged(p)["scoring"]["position"]) for p in ABLATIONS}
    assert {(-1, "read"), (-1, "predict"), ("middle", "read"), ("middle", "predict")} <= layers


@pytest.mark.parametrize("path", ABLATIONS, ids=[p.stem for p in ABLATIONS])
def test_ablation_config_dry_runs(tmp_path, path):
    from tests.conftest import copy_workflow, run_snakemake

    work = copy_workflow(tmp_path / "wf")
    proc = run_snakemake(work, "-n", "--configfile", "config/config.yaml", f"config/ablation/{path.name}", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    run = _merged(path)["run"]
    assert f"results/{run}/clusters/s0/assign/" in proc.stdout and "results/tiny/" not in proc.stdout
    assert "rule embed_sample" in proc.stdout and "rule score_reference" not in proc.stdout  # no row needs its loss


def _finished_looking_run(work: Path) -> None:
    """Make every planned output exist with Snakemake's metadata (empty files, directories for the
    directory() outputs, then --touch), as if the workflow had run."""
    from tests.conftest import run_snakemake

    proc = run_snakemake(work, "-n", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    outputs = {o.strip() for line in proc.stdout.splitlines() if line.strip().startswith("output:")
               for o in line.strip()[len("output:"):].split(",")}
    for out in outputs:
        p = work / out
        if p.name in ("hf", "mcore", "tokenizer", "harness", "fetched") or p.parent.name == "masks":  # directory()
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
    proc = run_snakemake(work, "--cores", "1", "--touch", "-q", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Nothing to be done" in run_snakemake(work, "-n", timeout=300).stdout


def test_representation_change_reruns_the_tree_not_the_reference_loss(tmp_path):
    """After a (touched) finished run, changing scoring.layer or scoring.position reruns the sample, the
    projection, the tree, assign and the cluster rows, and leaves the reference loss and every row that
    reads it (rho1, excess_static, cluster_slm's ranking input) alone."""
    import re

    import yaml

    from tests.conftest import change_config, copy_workflow, run_snakemake

    work = copy_workflow(tmp_path / "wf")
    _finished_looking_run(work)
    for edit in ({"layer": -1}, {"position": "predict"}):
        original = (work / "config/config.yaml").read_text()
        change_config(work, lambda c: c["scoring"].update(edit))
        proc = run_snakemake(work, "-n", timeout=300)
        (work / "config/config.yaml").write_text(original)
        assert proc.returncode == 0, proc.stdout[-3000:]
        rules = set(re.findall(r"^rule (\w+):", proc.stdout, re.M))
        assert {"embed_sample", "fit_projection", "cluster_level", "assign", "select_tokens"} <= rules, edit
        assert not rules & {"score_reference", "score_base", "train_reference"}
        retrained = set(re.findall(r"^\s+output: results/tiny/models/(\w+)(?:\.s\d+)?/mcore", proc.stdout, re.M))
        cfg = yaml.safe_load(original)
        assert "cluster" in retrained and not retrained & {"ct", "rho1", "random", "excess_static"}, retrained
        assert retrained <= set(cfg["variants"])


def test_every_tree_from_one_pass_equals_one_pass_per_tree(world, tmp_path):
    """assign_trees places each token in every tree (one forward pass): the same leaf ids and distances
    as one assign_shard pass per tree."""
    from rhocluster.clustering.assign import TreeFiles, assign_trees

    root = world["root"]
    rng = np.random.default_rng(3)
    other = np.load(root / "centroids.npy")[rng.permutation(12)[:7]] + 0.05
    np.save(tmp_path / "c2.npy", other.astype(np.float32))
    trees = [
        TreeFiles(root / "projection.npz", root / "centroids.npy", tmp_path / "a.leaf.npy", tmp_path / "a.dist.npy"),
        TreeFiles(root / "projection.npz", tmp_path / "c2.npy", tmp_path / "b.leaf.npy", tmp_path / "b.dist.npy"),
    ]
    stats = assign_trees(world["model"], world["shard"], trees, batch_size=5)
    assert [s["leaves_used"] <= k for s, k in zip(stats, (12, 7))] == [True, True]
    for i, tree in enumerate(trees):
        single = assign_shard(world["model"], world["shard"], tree.projection, tree.centroids,
                              tmp_path / f"s{i}.leaf.npy", tmp_path / f"s{i}.dist.npy", batch_size=5)
        assert single == stats[i]
        np.testing.assert_array_equal(np.load(tree.leaf), np.load(tmp_path / f"s{i}.leaf.npy"))
        np.testing.assert_array_equal(np.load(tree.dist), np.load(tmp_path / f"s{i}.dist.npy"))
    assert not np.array_equal(np.load(trees[0].leaf), np.load(trees[1].leaf))
    with pytest.raises(ValueError, match="no cluster tree"):
        assign_trees(world["model"], world["shard"], [], batch_size=5)
