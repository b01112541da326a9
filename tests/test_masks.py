import json

import numpy as np
import pytest

from rhocluster.selection.balanced import balanced_leaf_quotas
from rhocluster.selection.masks import (
    count_leaves,
    mask_summary,
    random_mask,
    select_in_shard,
    shard_leaf_quotas,
    shard_rng,
)

K1 = 30


def make_shard(rng: np.random.Generator, w: int = 16, s: int = 64, k1: int = K1, p_leaf=None) -> np.ndarray:
    ids = rng.choice(k1, size=(w, s), p=p_leaf).astype(np.int32)
    ids[rng.random((w, s)) < 0.15] = -1  # padding / non-target positions
    return ids


@pytest.fixture
def shard() -> np.ndarray:
    return make_shard(np.random.default_rng(0))


def random_quotas(rng, ids, k1=K1):
    have = count_leaves(ids, k1)
    return (have * rng.random(k1)).astype(np.int64)


def test_shard_leaf_quotas_sums_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n_shards, k1 = int(rng.integers(1, 8)), int(rng.integers(1, 20))
        counts = rng.integers(0, 30, size=(n_shards, k1))
        counts[rng.random(counts.shape) < 0.3] = 0
        q = (counts.sum(0) * rng.random(k1)).astype(np.int64)
        out = shard_leaf_quotas(q, counts)
        assert out.dtype == np.int64 and out.shape == (n_shards, k1)
        np.testing.assert_array_equal(out.sum(0), q)
        assert (out >= 0).all() and (out <= counts).all()
        # proportional to within one token
        tot = np.maximum(counts.sum(0), 1)
        assert (np.abs(out - q * counts / tot) < 1).all()
        np.testing.assert_array_equal(out, shard_leaf_quotas(q, counts))


def test_shard_leaf_quotas_remainder_rule():
    # 3 equal shards, quota 4: 1 each + 1 for the lowest index (tie on remainder)
    out = shard_leaf_quotas(np.array([4]), np.array([[5], [5], [5]]))
    assert out[:, 0].tolist() == [2, 1, 1]
    # quota 5 of counts [1, 9]: 0.5 / 4.5 -> floor [0, 4], remainder to the larger fraction (0.5)
    out = shard_leaf_quotas(np.array([5]), np.array([[1], [9]]))
    assert out[:, 0].tolist() == [1, 4]


def test_shard_leaf_quotas_rejects_excess():
    with pytest.raises(ValueError, match="exceeds"):
        shard_leaf_quotas(np.array([3, 11]), np.array([[2, 5], [1, 5]]))


def test_exact_counts_and_padding_never_selected(shard):
    rng = np.random.default_rng(1)
    q = random_quotas(rng, shard)
    mask = select_in_shard(shard, q, seed=3)
    assert mask.dtype == bool and mask.shape == shard.shape
    assert not mask[shard < 0].any()
    np.testing.assert_array_equal(count_leaves(shard, K1, mask=mask), q)


def test_random_policy_seeded_per_shard(shard):
    q = random_quotas(np.random.default_rng(3), shard)
    a = select_in_shard(shard, q, seed=5, shard=2)
    np.testing.assert_array_equal(a, select_in_shard(shard, q, seed=5, shard=2))
    assert not np.array_equal(a, select_in_shard(shard, q, seed=5, shard=3))
    assert not np.array_equal(a, select_in_shard(shard, q, seed=6, shard=2))
    # shard streams are SeedSequence children, independent of processing order
    child = np.random.SeedSequence(5).spawn(3)[2]
    assert shard_rng(5, 2).random() == np.random.default_rng(child).random()


def test_select_errors(shard):
    have = count_leaves(shard, K1)
    too_many = have.copy()
    too_many[4] += 1
    with pytest.raises(ValueError, match="leaf 4"):
        select_in_shard(shard, too_many)
    with pytest.raises(ValueError):
        select_in_shard(shard, have[:-1])  # leaf id beyond k1


def test_random_mask_exact_ratio(shard):
    valid = shard >= 0
    for ratio in (0.0, 0.33, 0.6, 1.0):
        m = random_mask(valid, ratio, seed=1)
        assert m.sum() == round(ratio * valid.sum())
        assert not m[~valid].any()
    np.testing.assert_array_equal(random_mask(valid, 0.6, 1), random_mask(valid, 0.6, 1))
    assert not np.array_equal(random_mask(valid, 0.6, 1, shard=0), random_mask(valid, 0.6, 1, shard=1))
    with pytest.raises(ValueError):
        random_mask(valid, 1.5, 0)


def test_balanced_pipeline_raises_entropy():
    """Long-tailed leaves over 4 shards: balanced quotas -> shard quotas -> masks; the budget
    is met exactly and the cluster distribution is flatter after selection at every level."""
    rng = np.random.default_rng(4)
    k1 = 40
    p = 1.0 / np.arange(1, k1 + 1) ** 1.3
    p = rng.permutation(p / p.sum())
    shards = [make_shard(rng, w=32, s=128, k1=k1, p_leaf=p) for _ in range(4)]
    level2 = rng.integers(0, 8, size=k1)
    level3 = rng.integers(0, 3, size=8)
    anc = np.stack([np.arange(k1), level2, level3[level2]], axis=1).astype(np.int32)

    shard_counts = np.stack([count_leaves(s, k1) for s in shards])
    leaf_counts = shard_counts.sum(0)
    total = int(round(0.6 * leaf_counts.sum()))
    leaf_q = balanced_leaf_quotas(leaf_counts, anc, total)
    per_shard = shard_leaf_quotas(leaf_q, shard_counts)
    kept = np.zeros(k1, dtype=np.int64)
    for i, s in enumerate(shards):
        m = select_in_shard(s, per_shard[i], seed=11, shard=i)
        kept += count_leaves(s, k1, mask=m)
    np.testing.assert_array_equal(kept, leaf_q)

    summary = mask_summary(leaf_counts, kept, anc)
    json.dumps(summary)  # serialisable as written by the workflow
    assert summary["kept_tokens"] == total
    assert summary["kept_fraction"] == pytest.approx(0.6, abs=1e-3)
    assert len(summary["levels"]) == 3
    for lv in summary["levels"]:
        assert lv["entropy_after_nats"] >= lv["entropy_before_nats"] - 1e-12
        assert 0.0 <= lv["entropy_before_normalised"] <= lv["entropy_after_normalised"] <= 1.0 + 1e-12
        assert sum(lv["count_after"]) == total
    assert summary["levels"][0]["entropy_after_nats"] > summary["levels"][0]["entropy_before_nats"]


def test_mask_summary_values():
    anc = np.array([[0, 0], [1, 0], [2, 1]], dtype=np.int32)
    s = mask_summary(np.array([2, 2, 0]), np.array([1, 2, 0]), anc)
    lv1, lv2 = s["levels"]
    assert lv1["kept_fraction"] == [0.5, 1.0, None]
    assert lv1["entropy_before_nats"] == pytest.approx(np.log(2))
    assert lv1["entropy_before_normalised"] == pytest.approx(1.0)
    assert lv2["kept_fraction"] == [0.75, None]
    assert lv2["entropy_before_nats"] == 0.0 and lv2["entropy_before_normalised"] == 0.0
    with pytest.raises(ValueError):
        mask_summary(np.array([1, 1, 1]), np.array([2, 0, 0]), anc)


# --- the select_tokens stage on real shard files -------------------------------------------------


@pytest.fixture
def stage_inputs(tmp_path):
    """Three shards of random tokens, their leaf ids and a saved 2-level tree of 12 leaves."""
    from rhocluster.clustering.hierarchy import fit_hierarchy, save_level
    from rhocluster.common.atomic import save_npy
    from rhocluster.data.shards import write_shard

    rng = np.random.default_rng(0)
    prefixes, leaves = [], []
    for i, w in enumerate([9, 14, 5]):
        prefix = tmp_path / "shards" / f"{i:05d}"
        write_shard(prefix, rng.integers(0, 50, size=(w, 17)), None, 50, 1, 0)
        ids = rng.choice(12, size=(w, 17), p=np.r_[np.full(4, 0.2), np.full(8, 0.025)]).astype(np.int32)
        ids[:, 0] = -1
        save_npy(tmp_path / f"leaf{i}.npy", ids)
        prefixes.append(str(prefix))
        leaves.append(str(tmp_path / f"leaf{i}.npy"))
    levels = fit_hierarchy(rng.normal(size=(200, 4)).astype(np.float32), [12, 3], seed=0)
    dirs = []
    for lv, res in enumerate(levels, start=1):
        save_level(res, tmp_path / f"level_{lv}", {})
        dirs.append(str(tmp_path / f"level_{lv}"))
    return tmp_path, prefixes, leaves, dirs


def test_stage_masks_align_and_keep_the_ratio(stage_inputs):
    from rhocluster.data.shards import Shard
    from rhocluster.selection.kinds import MaskFiles, select_masks
    from rhocluster.selection.stage import select_cluster_masks

    tmp, prefixes, leaves, dirs = stage_inputs
    outs = [str(tmp / f"mask{i}.npy") for i in range(3)]
    summary = select_cluster_masks(prefixes, leaves, dirs, outs, str(tmp / "summary.json"), budget=0.6, policy="random", seed=1)
    total = sum(Shard(p).n_windows * 16 for p in prefixes)
    assert summary["kept"] == round(0.6 * total)
    for prefix, out in zip(prefixes, outs):
        mask = np.load(out)
        assert mask.shape == Shard(prefix).shape and mask.dtype == np.uint8 and not mask[:, 0].any()
    randoms = [str(tmp / f"random{i}.npy") for i in range(3)]
    kept = select_masks("random", MaskFiles(prefixes, randoms, str(tmp / "random.json")), {"budget": 0.6, "seed": 1})
    for i, prefix in enumerate(prefixes):
        mask = np.load(randoms[i]).astype(bool)
        valid = Shard(prefix).target_mask()
        assert mask.sum() == round(0.6 * valid.sum()) and not (mask & ~valid).any()
        np.testing.assert_array_equal(mask, random_mask(valid, 0.6, 1, shard=i))  # seeded by (seed, shard index)
    assert kept["kept"] == sum(int(np.load(r).sum()) for r in randoms)
    on_disk = json.loads((tmp / "summary.json").read_text())
    assert on_disk["levels"]["levels"][0]["entropy_after_nats"] >= 0


def test_stage_rejects_misaligned_leaf_ids_naming_the_file(stage_inputs):
    from rhocluster.common.atomic import save_npy
    from rhocluster.selection.stage import select_cluster_masks

    tmp, prefixes, leaves, dirs = stage_inputs
    save_npy(leaves[1], np.zeros((14, 16), np.int32))
    with pytest.raises(ValueError, match=r"leaf ids file .*leaf1.npy: shape \(14, 16\) does not match its shard \(14, 17\)"):
        select_cluster_masks(prefixes, leaves, dirs, [str(tmp / f"m{i}.npy") for i in range(3)], str(tmp / "s.json"),
                             budget=0.6, policy="random", seed=0)
    save_npy(leaves[1], np.zeros((14, 17), np.int32))  # position 0 must be -1
    with pytest.raises(ValueError, match="expected -1 exactly at position 0"):
        select_cluster_masks(prefixes, leaves, dirs, [str(tmp / f"m{i}.npy") for i in range(3)], str(tmp / "s.json"),
                             budget=0.6, policy="random", seed=0)
    assert not list(tmp.glob("m*.npy"))


def test_stage_rejects_a_shard_disagreeing_with_its_index(stage_inputs):
    from rhocluster.selection.kinds import MaskFiles, select_masks
    from rhocluster.selection.stage import select_cluster_masks

    tmp, prefixes, leaves, dirs = stage_inputs
    meta_path = tmp / "shards/00002.json"
    meta = json.loads(meta_path.read_text())
    meta["n_windows"] = 6
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"shard {prefixes[2]}: index has 5 windows, metadata says 6"):
        select_cluster_masks(prefixes, leaves, dirs, [str(tmp / f"m{i}.npy") for i in range(3)], str(tmp / "s.json"),
                             budget=0.6, policy="random", seed=0)
    with pytest.raises(ValueError, match=f"shard {prefixes[2]}: index has 5 windows"):
        select_masks("random", MaskFiles(prefixes, [str(tmp / f"r{i}.npy") for i in range(3)], str(tmp / "r.json")),
                     {"budget": 0.6, "seed": 0})
