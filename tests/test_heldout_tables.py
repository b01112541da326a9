"""Held-out loss tables (rhocluster.reporting.heldout_tables) against direct computations on small shards."""

from __future__ import annotations

from pathlib import Path
import json

import numpy as np
import pytest

from rhocluster.corpus.labels import LABELS
from rhocluster.corpus.overlap import measure_overlap
from rhocluster.data.shards import pack_windows, write_shard
from rhocluster.reporting.heldout_tables import (
    PROBLEMS,
    TOKEN,
    TYPE,
    WEB_ALL,
    document_ids,
    heldout_tables,
    load_columns,
    pairs_prose,
    seeds_markdown,
    write_heldout_tables,
)
from rhocluster.reporting.stats import rng_for, seed_interval
from rhocluster.workflow.variants import Pair

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
    models = {"base": 0.5, "ct": 0.0, "ct.s1": 0.05, "rho1": -0.3, "rho1.s1": -0.25, "random": 0.0, "random.s1": 0.05, "better": -1.5, "better.s1": -1.5}
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
        # type-balanced: the mean over token ids of each id's mean loss, every id that occurs
        for sel, name in ((target & (web_labels == 1), LABELS[1]), (target, WEB_ALL)):
            ids, x = web_tokens[sel], w[sel].astype(np.float64)
            want = np.mean([x[ids == t].mean() for t in np.unique(ids)])
            assert cols[name].mean(m, TYPE) == pytest.approx(want, rel=1e-12)
            assert cols[name].n_types() == np.unique(ids).size
    # documents: one per EOS, counted where they have target tokens
    n_docs = int((web_tokens == EOS).sum()) + (web_tokens.reshape(-1)[-1] != EOS)
    assert cols[WEB_ALL].n_docs <= n_docs and cols[WEB_ALL].n_tokens == web_tokens[:, 1:].size


def hand_built(tmp_path):
    """Two documents, one window each (EOS = 2 ends each): targets 5 5 7 EOS | 5 9 9 EOS."""
    tokens = np.array([[1, 5, 5, 7, EOS], [1, 5, 9, 9, EOS]])
    loss = np.array([[np.nan, 1, 1, 2, 0.5], [np.nan, 1, 4, 10, 1.5]], dtype=np.float16)
    write_shard(tmp_path / "hand", tokens, None, 64, n_documents=2, n_dropped=0)
    np.save(tmp_path / "hand.npy", loss)
    return load_columns({"heldout_hq": [str(tmp_path / "hand")]}, {"m": {"heldout_hq": [str(tmp_path / "hand.npy")]}}, EOS)[PROBLEMS]


def test_type_balanced_mean_of_a_hand_built_column(tmp_path):
    """Token mean 21/8; per type 5: 1, 7: 2, EOS: 1, 9: 7, so the type-balanced mean is 11/4; types with
    >= 2 tokens: 5, EOS, 9 -> 3; >= 3 tokens: 5 alone -> 1."""
    col = hand_built(tmp_path)
    assert col.mean("m", TOKEN) == 21 / 8
    assert col.mean("m", TYPE) == 11 / 4
    assert col.mean("m", TYPE, min_count=2) == 3.0 and col.mean("m", TYPE, min_count=3) == 1.0
    # Two documents: a resample is (doc 0 twice), (each once) or (doc 1 twice), with probability 1/4, 1/2,
    # 1/4. Tokens keep the whole column's weights, 1 / their type's count (5: 1/3, 7: 1, EOS: 1/2, 9: 1/2):
    # doc 0 alone: (1/3 + 1/3 + 2 + 0.5/2) / (1/3 + 1/3 + 1 + 1/2) = 35/26; doc 1 alone:
    # (1/3 + 4/2 + 10/2 + 1.5/2) / (1/3 + 1/2 + 1/2 + 1/2) = 97/22. Re-counting types inside a resample
    # (types seen only in one document dropping out) would instead give 7/6 and 19/6.
    draws = col.draws(["m"], 4000, np.random.default_rng(0))
    values = {35 / 26: 0.25, 11 / 4: 0.5, 97 / 22: 0.25}
    got = draws[TYPE][:, 0]
    assert np.isclose(got[:, None], list(values), rtol=1e-9).any(axis=1).all()
    for v, prob in values.items():
        assert np.isclose(got, v, rtol=1e-9).mean() == pytest.approx(prob, abs=0.03)
    assert set(np.round(draws[TOKEN][:, 0], 9)) == {round(4.5 / 4, 9), 21 / 8, round(16.5 / 4, 9)}
    # min_count applies to the whole column's counts: type 7 (one token) drops out of every resample;
    # doc 0 alone: (1/3 + 1/3 + 0.25) / (1/3 + 1/3 + 1/2) = 11/14, doc 1 alone: (1/3 + 7 + 0.75) / (11/6) = 97/22
    two = col.draws(["m"], 4000, np.random.default_rng(0), min_count=2)[TYPE][:, 0]
    assert np.isclose(two[:, None], [11 / 14, 3.0, 97 / 22], rtol=1e-9).any(axis=1).all()


def test_type_balanced_draws_equal_a_direct_computation(world):
    """The vectorised draws against a loop over resamples on the token level, same document counts: each
    token weighted by 1 / its type's count in the whole column (types under min_count weigh 0)."""
    shards, losses, arrays, web_tokens, web_labels = world
    col = load_columns(shards, losses, EOS)[LABELS[0]]
    models = ["ct", "rho1"]
    draws = col.draws(models, 50, np.random.default_rng(7), min_count=2)
    w = np.random.default_rng(7).multinomial(col.n_docs, np.full(col.n_docs, 1 / col.n_docs), size=50)
    type_count = {t: col.count[col.token == t].sum() for t in np.unique(col.token)}
    inv = np.array([1 / type_count[t] if type_count[t] >= 2 else 0.0 for t in col.token])
    for b in range(50):
        tokens = w[b][col.doc] * col.count  # tokens of each (document, type) cell in the resample
        for j, m in enumerate(models):
            loss = w[b][col.doc] * col.loss[m]
            assert draws[TYPE][b, j] == pytest.approx((inv * loss).sum() / (inv * tokens).sum(), rel=1e-12)
            assert draws[TOKEN][b, j] == pytest.approx(loss.sum() / tokens.sum(), rel=1e-12)
    # the resamples' type-balanced statistic centres on the estimate (no bias from re-counting types)
    many = col.draws(models, 4000, np.random.default_rng(1))[TYPE][:, 0]
    assert abs(np.median(many) - col.mean("ct", TYPE)) < 0.25 * (np.percentile(many, 97.5) - np.percentile(many, 2.5))


def test_seed_rows_average_and_pair_by_seed(world):
    shards, losses, *_ = world
    cols = load_columns(shards, losses, EOS)
    reps = {"base": ["base"], "ct": ["ct", "ct.s1"], "rho1": ["rho1", "rho1.s1"]}
    pairs = [Pair("rho1", "ct", "live ranking")]
    loss_df, diff_df, seed_df = heldout_tables(cols, reps, pairs, 2000, seed=3)
    c = cols[WEB_ALL]
    for metric in (TOKEN, TYPE):
        row = loss_df[(loss_df.row == "ct") & (loss_df.column == WEB_ALL) & (loss_df.metric == metric)].iloc[0]
        assert row.estimate == pytest.approx((c.mean("ct", metric) + c.mean("ct.s1", metric)) / 2) and row.seeds == 2
        assert row.low < row.estimate < row.high
        # the interval: Student's t over the seeds with the documents' variance added (stats.seed_interval),
        # on the column's shared document resamples
        draws = c.draws(["ct", "ct.s1"], 2000, rng_for(3, "heldout-documents", WEB_ALL))[metric]
        want = seed_interval([c.mean("ct", metric), c.mean("ct.s1", metric)], draws.mean(axis=1))
        assert (row.low, row.high) == pytest.approx(want[1:3], rel=1e-12)
        d = diff_df[(diff_df.variant == "rho1") & (diff_df.column == WEB_ALL) & (diff_df.metric == metric)].iloc[0]
        want = ((c.mean("rho1", metric) - c.mean("ct", metric)) + (c.mean("rho1.s1", metric) - c.mean("ct.s1", metric))) / 2
        assert d.estimate == pytest.approx(want) and d.estimate < -0.2
        assert d.high < 0 and d.p < 0.01  # shifted by -0.3 / -0.3: clearly better
    assert len(diff_df) == 2 * len(cols) and set(diff_df.counterpart) == {"ct"} and set(diff_df.factor) == {"live ranking"}
    # seeded: the same numbers again
    again = heldout_tables(cols, reps, pairs, 2000, seed=3)
    assert again[0].equals(loss_df) and again[1].equals(diff_df) and again[2].equals(seed_df)


def test_every_seed_is_listed_with_its_own_statistic(world, tmp_path):
    """The per-seed table: each model of a row with several seeds, its own column means (the row's
    estimate is their mean) and an interval over documents that holds them; single-seed rows are left out."""
    shards, losses, *_ = world
    cols = load_columns(shards, losses, EOS)
    reps = {"base": ["base"], "ct": ["ct", "ct.s1"], "rho1": ["rho1", "rho1.s1"]}
    loss_df, _, seed_df = heldout_tables(cols, reps, [], 1000, seed=3)
    assert len(seed_df) == 2 * 5 * len(cols)  # metrics x models x columns
    for metric in (TOKEN, TYPE):
        for name, col in cols.items():
            got = seed_df[(seed_df.column == name) & (seed_df.metric == metric)].set_index("model")
            for m in ("base", "ct", "ct.s1", "rho1", "rho1.s1"):
                assert got.loc[m, "estimate"] == col.mean(m, metric)
                assert got.loc[m, "low"] < got.loc[m, "estimate"] < got.loc[m, "high"]
            row = loss_df[(loss_df.row == "rho1") & (loss_df.column == name) & (loss_df.metric == metric)].iloc[0]
            assert row.estimate == pytest.approx(got.loc[["rho1", "rho1.s1"], "estimate"].mean(), rel=1e-12)
    names = list(cols)
    md = seeds_markdown(seed_df, names, TOKEN).splitlines()
    assert md[0] == "| model | " + " | ".join(names) + " |"
    assert [line.split(" | ")[0] for line in md[2:]] == ["| ct", "| ct.s1", "| rho1", "| rho1.s1"]
    c = cols[WEB_ALL]
    cell = md[3].split(" | ")[names.index(WEB_ALL) + 1]
    assert cell.startswith(f"{c.mean('ct.s1'):.3f} [")
    assert seeds_markdown(seed_df[seed_df.row == "base"], names) == ""
    # written beside the row tables where the rule names the outputs, caption first
    out = {k: tmp_path / f"out.{k}" for k in ("md", "losses_csv", "differences_csv", "seeds_md", "seeds_csv")}
    write_heldout_tables(shards, losses, reps, [], EOS, 1000, 3, "test", out)
    text = out["seeds_md"].read_text()
    assert text.startswith("Held-out mean token loss of every training seed") and text.endswith("\n".join(md) + "\n")
    import pandas as pd

    csv = pd.read_csv(out["seeds_csv"])
    assert list(csv.columns) == ["row", "model", "column", "metric", "estimate", "low", "high"]
    assert csv.estimate.to_numpy() == pytest.approx(seed_df.estimate.to_numpy(), abs=5e-6)


def test_pair_table_rows_are_the_declared_pairs_of_the_run(world):
    """Only declared pairs whose two rows are trained: the run's variant subset drops excess_static, so
    cluster_excess's pair with it is skipped and its pair with cluster stays."""
    import yaml

    from rhocluster.workflow.variants import load_variants, variant_pairs

    shards, losses, *_ = world
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())
    cfg["variants"] = ["ct", "random", "cluster", "cluster_excess"]
    pairs, skipped = variant_pairs(load_variants(cfg))
    assert [(p.variant, p.counterpart) for p in pairs] == [("random", "ct"), ("cluster", "random"), ("cluster_excess", "cluster")]
    assert [(p.variant, p.counterpart) for p in skipped] == [("cluster_excess", "excess_static")]
    cols = load_columns(shards, losses, EOS)
    # rows backed by the fixture's models (cluster_excess: models shifted by -1.5, clearly lower)
    reps = {"ct": ["ct", "ct.s1"], "random": ["random", "random.s1"], "cluster": ["random", "random.s1"], "cluster_excess": ["better", "better.s1"]}
    loss_df, diff_df, _ = heldout_tables(cols, reps, pairs, 500, seed=3)
    labels = [p.label for p in pairs]
    assert labels[0] == "a random budget instead of every token: random − ct"
    assert list(dict.fromkeys(zip(diff_df.variant, diff_df.counterpart))) == [(p.variant, p.counterpart) for p in pairs]
    # cluster and random are the same models here: every difference is exactly 0, p = 1
    same = diff_df[diff_df.variant == "cluster"]
    assert (same.estimate == 0).all() and (same.low == 0).all() and (same.high == 0).all() and (same.p == 1).all()
    out = {k: world[0]["heldout_web"][0] + f".{k}" for k in ("md", "losses_csv", "differences_csv")}
    write_heldout_tables(shards, losses, reps, pairs, EOS, 300, 1, "t", out, skipped=skipped)
    md = open(out["md"]).read()
    for label in labels:
        assert md.count(f"| {label} |") == 2  # mean token loss and type-balanced pair tables
    assert "Against" not in md
    assert "skipped, their counterpart not trained in this run: cluster_excess − excess_static (balancing by the tree)." in md
    sentence = "- *balanced tree sampling instead of uniform* (cluster − random): no significant difference in mean token loss on any column; no significant difference in type-balanced mean loss on any column."
    assert sentence in md
    assert (
        "- *leaves filled by excess loss instead of at random* (cluster_excess − cluster): mean token loss lower on "
        "every column; type-balanced mean loss lower on every column." in md
    )


def test_pair_sentences_read_the_table():
    """One sentence per pair: lower / higher where p < 0.05, the rest named as not different."""
    cols = ["math", "prose", "junk"]
    rows = []
    for metric, cells in ((TOKEN, [(-0.2, 0.001), (0.3, 0.01), (0.05, 0.4)]), (TYPE, [(0.1, 0.02), (0.2, 0.001), (0.3, 0.03)])):
        for c, (est, p) in zip(cols, cells):
            rows.append({"variant": "a", "counterpart": "b", "factor": "f", "column": c, "metric": metric, "estimate": est, "p": p})
    import pandas as pd

    got = pairs_prose(pd.DataFrame(rows), cols)
    assert got == (
        "- *f* (a − b): mean token loss lower on math, higher on prose, no significant difference on junk; "
        "type-balanced mean loss higher on every column.\n"
    )


def test_write_tables_and_bad_loss_file(world, tmp_path):
    shards, losses, *_ = world
    out = {k: tmp_path / f"out.{k}" for k in ("md", "losses_csv", "differences_csv")}
    reps = {"base": ["base"], "ct": ["ct", "ct.s1"], "rho1": ["rho1", "rho1.s1"]}
    write_heldout_tables(shards, losses, reps, [Pair("rho1", "ct", "live ranking")], EOS, 500, 1, "test", out)
    md = out["md"].read_text()
    assert md.count("| model | math | prose | navigation | web (all) | problems | seeds |") == 2  # both metrics
    assert "| live ranking: rho1 − ct |" in md and "Type-balanced mean loss (the mean over token types" in md
    assert "seen in training" not in md
    # with the overlap measurement (tables/heldout_overlap.json), the heading says how much training saw
    web_docs = [{"text": f"page {i}: " + "Home | Forum | Login | Register | Search | Help | " * 2} for i in range(4)]
    for split, docs in (("heldout_web", web_docs[:2]), ("web", web_docs[2:]), ("heldout_hq", [{"text": "fresh " * 20}])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    overlap = measure_overlap({s: [tmp_path / f"{s}.jsonl"] for s in ("heldout_web", "heldout_hq")},
                              {"web": [tmp_path / "web.jsonl"]})
    covered = overlap["overlap"]["heldout_web"]["all"]["covered"]["all"]
    assert 0.5 < covered < 1
    write_heldout_tables(shards, losses, reps, [Pair("rho1", "ct", "live ranking")], EOS, 500, 1, "test", out,
                         overlap=overlap)
    assert (f"Held-out text seen in training: {100 * covered:.2f}% of held-out web characters and 0.00% of held-out "
            "problem/solution characters lie inside a run of 50 characters") in out["md"].read_text()
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

    from rhocluster.model.mcore_format import save_mcore
    from rhocluster.model.megatron import build_gpt_model, init_distributed, lm_forward
    from rhocluster.model.shape import LlamaShape
    from rhocluster.scoring.heldout_loss import score_heldout

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
    write_heldout_tables(shards, losses, {"base": ["base"], "ct": ["ct"]}, [], EOS, 200, 1, "u", out)
    md = out["md"].read_text()
    assert "no labels in this corpus" in md and "per ground-truth label" not in md
    assert f"| model | {WEB_ALL} | {PROBLEMS} | seeds |" in md
