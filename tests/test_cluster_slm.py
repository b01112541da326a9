"""cluster_slm: SLM's live excess loss ranked inside cluster groups of each global batch, every group
its balanced share of the batch budget; against a numpy reference of the definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rhocluster.model.megatron import build_gpt_model, lm_forward
from rhocluster.selection.balanced import balanced_leaf_quotas
from rhocluster.training.data import TokenStream
from rhocluster.training.selectors import grouped_slm_keep
from rhocluster.training.trainer import StepInfo, train
from tests.test_trainer import SHAPE, SIZES, WINDOW, config, data, device, run_two_gloo_ranks  # noqa: F401  (fixtures)

# A two-level tree over 6 groups: groups 0-3 under parent 0, groups 4-5 under parent 1.
TREE = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [4, 1], [5, 1]])


def reference_keep(excess, valid, groups, ratio, tree):
    """The definition, in numpy: k = ceil(ratio * n) split by balanced water-filling over the groups'
    counts in the batch; each group keeps its quota of highest excess (ties: earlier in pooled order)."""
    x = np.concatenate([e[v] for e, v in zip(excess, valid)]).astype(np.float64)
    g = np.concatenate([gr[v] for gr, v in zip(groups, valid)])
    k = math.ceil(ratio * x.size - 1e-9)
    quotas = balanced_leaf_quotas(np.bincount(g, minlength=tree.shape[0]), tree, k)
    order = np.lexsort((np.arange(x.size), -x, g))
    sorted_g = g[order]
    rank = np.arange(x.size) - np.searchsorted(sorted_g, sorted_g, side="left")
    keep = np.zeros(x.size, bool)
    keep[order[rank < quotas[sorted_g]]] = True
    out, start = [], 0
    for v in valid:
        m = np.zeros(v.shape, bool)
        m[v] = keep[start : start + int(v.sum())]
        start += int(v.sum())
        out.append(m)
    return out, quotas


def batch(seed: int, skew: bool = True):
    rng = np.random.default_rng(seed)
    # group 0 dominates the batch (a long tail): balancing must cap it
    p = np.array([0.55, 0.1, 0.1, 0.05, 0.15, 0.05]) if skew else np.full(6, 1 / 6)
    groups = [rng.choice(6, size=(3, 10), p=p) for _ in range(2)]
    excess = [np.round(rng.normal(size=(3, 10)), 1).astype(np.float32) for _ in range(2)]  # with ties
    valid = [rng.random((3, 10)) < 0.85 for _ in range(2)]
    return excess, valid, groups


@pytest.mark.parametrize("ratio", [0.3, 0.6, 1.0])
def test_grouped_keep_matches_the_definition(ratio):
    excess, valid, groups = batch(1)
    got = grouped_slm_keep(
        [torch.from_numpy(e) for e in excess], [torch.from_numpy(v) for v in valid],
        [torch.from_numpy(g) for g in groups], ratio, TREE,
    )  # fmt: skip
    want, quotas = reference_keep(excess, valid, groups, ratio, TREE)
    for a, b, v in zip(got, want, valid):
        assert a.dtype == torch.bool and np.array_equal(a.numpy(), b) and not (a.numpy() & ~v).any()
    kept = np.bincount(np.concatenate([g[k.numpy()] for g, k in zip(groups, got)]), minlength=6)
    np.testing.assert_array_equal(kept, quotas)
    n = sum(int(v.sum()) for v in valid)
    assert kept.sum() == math.ceil(ratio * n - 1e-9)


def test_balancing_caps_the_dominant_group():
    """Plain SLM would let group 0 take tokens in proportion to its excess; here it gets at most the
    water-filling cap, and small groups keep all their tokens when the cap exceeds their size."""
    excess, valid, groups = batch(2)
    excess[0][groups[0] == 0] += 5.0  # group 0 has by far the highest excess loss
    excess[1][groups[1] == 0] += 5.0
    got = grouped_slm_keep(
        [torch.from_numpy(e) for e in excess], [torch.from_numpy(v) for v in valid],
        [torch.from_numpy(g) for g in groups], 0.5, TREE,
    )  # fmt: skip
    g = np.concatenate([gr[v] for gr, v in zip(groups, valid)])
    counts = np.bincount(g, minlength=6)
    kept = np.bincount(np.concatenate([gr[k.numpy()] for gr, k in zip(groups, got)]), minlength=6)
    assert kept[0] < min(counts[0], math.ceil(0.5 * counts.sum()))  # plain SLM would keep all of group 0
    assert (kept[1:] > 0).all()


WORKER = """
import sys, numpy as np, torch, torch.distributed as dist
from rhocluster.training.selectors import grouped_slm_keep
dist.init_process_group("gloo")
rank = dist.get_rank()
data = np.load(sys.argv[1])
get = lambda k: [torch.from_numpy(data[f"{k}{rank}_{i}"]) for i in range(2)]
keep = grouped_slm_keep(get("e"), get("v"), get("g"), 0.6, data["tree"])
np.savez(sys.argv[2] + f".{rank}.npz", *[k.numpy() for k in keep])
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_grouped_keep_ranks_the_global_batch_across_ranks(tmp_path):
    """Two gloo ranks select exactly what the definition selects on their pooled tokens."""
    arrays = {"tree": TREE}
    for r in range(2):
        excess, valid, groups = batch(10 + r)
        for i in range(2):
            arrays[f"e{r}_{i}"], arrays[f"v{r}_{i}"], arrays[f"g{r}_{i}"] = excess[i], valid[i], groups[i]
    got = run_two_gloo_ranks(WORKER, arrays, tmp_path)
    keys = [(r, i) for r in range(2) for i in range(2)]
    want, _ = reference_keep(*([arrays[f"{k}{r}_{i}"] for r, i in keys] for k in "evg"), 0.6, TREE)
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


@pytest.fixture(scope="module")
def leaves(data, tmp_path_factory):  # noqa: F811
    """Leaf ids (12 leaves, -1 at position 0) for the trainer fixture's shards; leaf -> group = leaf // 2."""
    root = tmp_path_factory.mktemp("leaves")
    rng = np.random.default_rng(3)
    paths = []
    for i, n in enumerate(SIZES):
        leaf = rng.integers(0, 12, size=(n, WINDOW)).astype(np.int32)
        leaf[:, 0] = -1
        np.save(root / f"leaf{i}.npy", leaf)
        paths.append(str(root / f"leaf{i}.npy"))
    return paths


@pytest.mark.parametrize("micro_batch", [4, 2])  # one pass (score = train forward), and two passes
def test_trainer_cluster_slm_step_matches_the_definition(data, leaves, tmp_path, micro_batch):  # noqa: F811
    """The first cluster_slm step keeps what the definition keeps on (model loss - reference loss)."""
    group_of_leaf = np.arange(12) // 2
    stream = TokenStream(
        data["shards"], ref_losses=data["ref"], leaves=leaves, group_of_leaf=group_of_leaf, group_tree=TREE
    )
    seen: list[StepInfo] = []
    cfg = config(steps=1, micro_batch=micro_batch, tokens="slm", budget=0.6, group_level=2)
    train(SHAPE, cfg, stream, tmp_path / "m", tmp_path / "c", tmp_path / "log.jsonl", tmp_path / "s.json",
          on_step=seen.append)  # fmt: skip
    info = seen[0]
    model = build_gpt_model(SHAPE)  # same seed, same initial weights as the trainer's
    excess, valid, groups = [], [], []
    for i in range(0, len(info.window_ids), micro_batch):
        b = stream.batch(info.window_ids[i : i + micro_batch])
        tokens = torch.from_numpy(b.tokens)
        with torch.no_grad():
            loss = lm_forward(model, tokens[:, :-1], tokens[:, 1:]).numpy()
        excess.append(loss - b.ref_loss[:, 1:])
        valid.append(b.valid[:, 1:])
        groups.append(b.groups[:, 1:])
    want, quotas = reference_keep(excess, valid, groups, 0.6, TREE)
    for got, w in zip(info.keep, want):
        assert np.array_equal(got, w)
    assert sum(int(w.sum()) for w in want) == math.ceil(0.6 * 4 * 16)


def test_group_level_needs_groups(data, tmp_path):  # noqa: F811
    cfg = config(steps=1, tokens="slm", group_level=1)
    stream = TokenStream(data["shards"], ref_losses=data["ref"])
    with pytest.raises(ValueError, match="group_level=1 needs every token's cluster group"):
        train(SHAPE, cfg, stream, tmp_path / "m", tmp_path / "c", tmp_path / "log.jsonl", tmp_path / "s.json")
    with pytest.raises(ValueError, match="needs tokens 'slm'"):
        config(tokens="mask", group_level=1)
