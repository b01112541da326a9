"""Held-out loss tables (rhocluster.reporting.heldout) against direct computations on small shards."""

from __future__ import annotations

import numpy as np
import pytest

from rhocluster.corpus.labels import LABELS
from rhocluster.data.shards import pack_windows, write_shard
from rhocluster.reporting.heldout import (
    PROBLEMS,
    WEB_ALL,
    document_ids,
    heldout_tables,
    load_columns,
    write_heldout_tables,
)

EOS, BOS, S = 2, 1, 9  # windows of 9 tokens (8 targets)


def make_shard(prefix, n_docs, rng, labelled=True):
    docs = []
    for _ in range(n_docs):
        n = int(rng.integers(3, 20))
        docs.append((list(rng.integers(3, 50, n)), rng.integers(0, 3, n).astype(np.uint8) if labelled else None))
    tokens, labels, _, dropped = pack_windows(docs, S, EOS, BOS)
    write_shard(prefix, tokens, labels, 64, n_documents=n_docs, n_dropped=dropped)
    return tokens, labels


def loss_file(path, tokens, rng, shift=0.0):
    loss = (rng.random(tokens.shape) * 3 + shift).astype(np.float16)
    loss[:, 0] = np.nan
    np.save(path, loss)
    return loss


@pytest.fixture
def world(tmp_path):
    rng = np.random.default_rng(0)
    web_tokens, web_labels = make_shard(tmp_path / "web", 40, rng)
    hq_tokens, _ = make_shard(tmp_path / "hq", 30, rng, labelled=False)
    models = {"base": 0.5, "ct": 0.0, "ct.s1": 0.05, "rho1": -0.3, "rho1.s1": -0.25}
    losses, arrays = {}, {}
    for m, shift in models.items():
        w = loss_file(tmp_path / f"{m}_web.npy", web_tokens, rng, shift)
        h = loss_file(tmp_path / f"{m}_hq.npy", hq_tokens, rng, shift)
        losses[m] = {"heldout_web": [str(tmp_path / f"{m}_web.npy")], "heldout_hq": [str(tmp_path / f"{m}_hq.npy")]}
        arrays[m] = (w, h)
    shards = {"heldout_web": [str(tmp_path / "web")], "heldout_hq": [str(tmp_path / "hq")]}
    return shards, losses, arrays, web_tokens, web_labels


def test_document_ids_follow_eos():
    tokens = np.array([[1, 5, 2, 1, 6], [7, 2, 1, 8, 9]])
    np.testing.assert_array_equal(document_ids(tokens, 2), [[0, 0, 0, 1, 1], [1, 1, 2, 2, 2]])


def test_column_means_equal_direct_means(world):
    shards, losses, arrays, web_tokens, web_labels = world
    cols = load_columns(shards, losses, EOS)
    assert list(cols) == [LABELS[0], LABELS[1], LABELS[2], WEB_ALL, PROBLEMS]
    for m, (w, h) in arrays.items():
        target = np.zeros(w.shape, bool)
        target[:, 1:] = True
        for j in range(3):
            sel = target & (web_labels == j)
            assert cols[LABELS[j]].mean(m) == pytest.approx(w[sel].astype(np.float64).mean(), rel=1e-12)
        assert cols[WEB_ALL].mean(m) == pytest.approx(w[target].astype(np.float64).mean(), rel=1e-12)
        assert cols[PROBLEMS].mean(m) == pytest.approx(h[:, 1:].astype(np.float64).mean(), rel=1e-12)
    # documents: one per EOS, counted where they have target tokens
    n_docs = int((web_tokens == EOS).sum()) + (web_tokens.reshape(-1)[-1] != EOS)
    assert cols[WEB_ALL].count.size <= n_docs and cols[WEB_ALL].count.sum() == web_tokens[:, 1:].size


def test_seed_rows_average_and_pair_by_seed(world):
    shards, losses, *_ = world
    cols = load_columns(shards, losses, EOS)
    reps = {"base": ["base"], "ct": ["ct", "ct.s1"], "rho1": ["rho1", "rho1.s1"]}
    loss_df, diff_df = heldout_tables(cols, reps, ["ct", "rho1"], 2000, seed=3)
    c = cols[WEB_ALL]
    row = loss_df[(loss_df.row == "ct") & (loss_df.column == WEB_ALL)].iloc[0]
    assert row.estimate == pytest.approx((c.mean("ct") + c.mean("ct.s1")) / 2) and row.seeds == 2
    assert row.low < row.estimate < row.high
    d = diff_df[(diff_df.variant == "rho1") & (diff_df.baseline == "ct") & (diff_df.column == WEB_ALL)].iloc[0]
    want = ((c.mean("rho1") - c.mean("ct")) + (c.mean("rho1.s1") - c.mean("ct.s1"))) / 2
    assert d.estimate == pytest.approx(want) and d.estimate < -0.2
    assert d.high < 0 and d.p < 0.01  # shifted by -0.3 / -0.3: clearly better
    # base and reference are never compared; a baseline is compared with the later one only
    assert set(diff_df.variant) == {"rho1"} and set(diff_df.baseline) == {"ct"}
    # seeded: the same numbers again
    again = heldout_tables(cols, reps, ["ct", "rho1"], 2000, seed=3)
    assert again[0].equals(loss_df) and again[1].equals(diff_df)


def test_write_tables_and_bad_loss_file(world, tmp_path):
    shards, losses, *_ = world
    out = {k: tmp_path / f"out.{k}" for k in ("md", "losses_csv", "differences_csv")}
    reps = {"base": ["base"], "ct": ["ct", "ct.s1"], "rho1": ["rho1", "rho1.s1"]}
    write_heldout_tables(shards, losses, reps, ["ct", "rho1"], EOS, 500, 1, "test", out)
    md = out["md"].read_text()
    assert "| model | math | prose | navigation | web (all) | problems | seeds |" in md
    assert "Against ct:" in md and "| rho1 |" in md
    bad = np.load(losses["ct"]["heldout_hq"][0])
    bad[1, 3] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    losses["ct"]["heldout_hq"] = [str(tmp_path / "bad.npy")]
    with pytest.raises(ValueError, match="bad.npy: non-finite loss"):
        load_columns(shards, losses, EOS)


@pytest.mark.slow
def test_score_heldout_is_the_trainers_loss_on_each_window(tmp_path):
    """score_heldout (mcore checkpoint, the trainer's forward) writes what lm_forward gives per window."""
    import torch

    from rhocluster.model.checkpoint import save_mcore
    from rhocluster.model.megatron import build_gpt_model, init_distributed, lm_forward
    from rhocluster.model.shape import LlamaShape
    from rhocluster.training.heldout import score_heldout

    shape = LlamaShape(vocab_size=64, hidden_size=32, ffn_hidden_size=64, num_layers=2, num_attention_heads=4,
                       num_query_groups=2, max_position_embeddings=8)  # fmt: skip
    init_distributed(5)
    model = build_gpt_model(shape)
    save_mcore({k: v for k, v in model.state_dict().items() if "_extra_state" not in k}, shape, tmp_path / "m")
    rng = np.random.default_rng(1)
    tokens, labels = make_shard(tmp_path / "s", 25, rng)
    stats = score_heldout(tmp_path / "m", [tmp_path / "s"], [tmp_path / "loss.npy"], batch_size=3)
    got = np.load(tmp_path / "loss.npy")
    assert got.shape == tokens.shape and got.dtype == np.float16 and np.isnan(got[:, 0]).all()
    with torch.no_grad():
        t = torch.from_numpy(tokens).long()
        want = lm_forward(model, t[:, :-1], t[:, 1:]).numpy()
    np.testing.assert_allclose(got[:, 1:].astype(np.float32), want, rtol=2e-3, atol=2e-3)  # float16 file
    assert stats[0]["tokens"] == want.size and stats[0]["mean_loss"] == pytest.approx(float(want.mean()), rel=1e-5)
    too_long = LlamaShape(**{**shape.to_dict(), "max_position_embeddings": 4})
    save_mcore({k: v for k, v in model.state_dict().items() if "_extra_state" not in k}, too_long, tmp_path / "m4")
    with pytest.raises(ValueError, match="exceed the model's 4 positions"):
        score_heldout(tmp_path / "m4", [tmp_path / "s"], [tmp_path / "l4.npy"])
    assert not (tmp_path / "l4.npy").exists()


def test_an_unlabelled_web_split_is_one_column_and_the_caption_says_why(tmp_path):
    rng = np.random.default_rng(1)
    web_tokens, _ = make_shard(tmp_path / "web", 20, rng, labelled=False)
    hq_tokens, _ = make_shard(tmp_path / "hq", 10, rng, labelled=False)
    losses = {}
    for m in ("base", "ct"):
        loss_file(tmp_path / f"{m}_web.npy", web_tokens, rng)
        loss_file(tmp_path / f"{m}_hq.npy", hq_tokens, rng)
        losses[m] = {"heldout_web": [str(tmp_path / f"{m}_web.npy")], "heldout_hq": [str(tmp_path / f"{m}_hq.npy")]}
    shards = {"heldout_web": [str(tmp_path / "web")], "heldout_hq": [str(tmp_path / "hq")]}
    out = {k: tmp_path / f"out.{k}" for k in ("md", "losses_csv", "differences_csv")}
    write_heldout_tables(shards, losses, {"base": ["base"], "ct": ["ct"]}, ["ct"], EOS, 200, 1, "u", out)
    md = out["md"].read_text()
    assert "no labels in this corpus" in md and "per ground-truth label" not in md
    assert f"| model | {WEB_ALL} | {PROBLEMS} | seeds |" in md
