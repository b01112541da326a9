"""Bootstrap statistics against closed forms, and their determinism."""

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

from rhocluster.reporting import stats
from rhocluster.reporting.evals import Predictions

B = 10_000


def bernoulli(n: int, p: float, seed: int = 0) -> np.ndarray:
    """Exactly round(p n) ones among n, in random order."""
    x = np.zeros(n, dtype=bool)
    x[: round(p * n)] = True
    return np.random.default_rng(seed).permutation(x)


class Interval(NamedTuple):
    estimate: float
    low: float
    high: float


class Paired(NamedTuple):
    diff: float
    low: float
    high: float
    p_value: float


def bootstrap_ci(values, n_resamples: int = B, seed: int = 0) -> Interval:
    """The package's bootstrap means and percentile interval of ``values``, as the tables combine them."""
    draws = stats.bootstrap_means(values, n_resamples, np.random.default_rng(seed))
    return Interval(float(np.mean(values)), *stats.percentile_interval(draws))


def paired_bootstrap(a, b, n_resamples: int = B, seed: int = 0) -> Paired:
    """mean(a) - mean(b) over the same items, its interval and bootstrap p, as paired_comparisons computes them."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    draws = stats.bootstrap_means(d, n_resamples, np.random.default_rng(seed))
    return Paired(float(d.mean()), *stats.percentile_interval(draws), stats.bootstrap_p_value(draws))


def preds(verdict: np.ndarray, name: str = "p") -> Predictions:
    ids = tuple(str(i) for i in range(verdict.size))
    return Predictions(Path(name), ids, np.asarray(verdict, bool), (None,) * verdict.size)


def test_bootstrap_ci_of_bernoulli_mean_matches_normal_approximation():
    n, p = 2000, 0.3
    ci = bootstrap_ci(bernoulli(n, p), n_resamples=B, seed=1)
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    assert ci.estimate == pytest.approx(p)
    assert ci.low == pytest.approx(p - half, abs=1.5e-3)
    assert ci.high == pytest.approx(p + half, abs=1.5e-3)


def test_bootstrap_means_have_the_plugin_variance_over_n():
    # Var*(mean of a resample) = (1/n) * mean((x - mean x)^2), exactly, for any sample
    x = np.random.default_rng(3).gamma(2.0, size=40)
    draws = stats.bootstrap_means(x, 40_000, np.random.default_rng(0))
    assert draws.mean() == pytest.approx(x.mean(), rel=1e-2)
    assert draws.var() == pytest.approx(x.var() / x.size, rel=3e-2)


def test_bootstrap_means_match_index_resampling_in_distribution():
    x = np.array([0.0, 0.0, 1.0, 2.5, 2.5, 7.0])
    rng = np.random.default_rng(5)
    by_index = x[rng.integers(0, x.size, size=(50_000, x.size))].mean(axis=1)
    ours = stats.bootstrap_means(x, 50_000, np.random.default_rng(6))
    qs = [0.025, 0.25, 0.5, 0.75, 0.975]
    np.testing.assert_allclose(np.quantile(ours, qs), np.quantile(by_index, qs), atol=0.1)
    assert ours.std() == pytest.approx(by_index.std(), rel=2e-2)


def test_bootstrap_means_do_not_depend_on_the_memory_bound(monkeypatch):
    x = bernoulli(300, 0.4)
    whole = stats.bootstrap_means(x, 1000, np.random.default_rng(9))
    monkeypatch.setattr(stats, "_MAX_CELLS", 6)  # chunks of 3 resamples
    np.testing.assert_array_equal(stats.bootstrap_means(x, 1000, np.random.default_rng(9)), whole)


def test_paired_identical_predictions_give_zero_difference_and_p_one():
    a = bernoulli(500, 0.37)
    res = paired_bootstrap(a, a.copy(), n_resamples=B, seed=2)
    assert (res.diff, res.low, res.high, res.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_known_shift():
    n = 1000
    a = bernoulli(n, 0.5, seed=4)
    b = a.copy()
    b[np.flatnonzero(~a)[:50]] = True  # b also solves 50 problems a misses: +5 points, no losses
    res = paired_bootstrap(b, a, n_resamples=B, seed=3)
    d, se = 0.05, math.sqrt((0.05 - 0.05**2) / n)
    assert res.diff == pytest.approx(d)
    assert res.low == pytest.approx(d - 1.96 * se, abs=2e-3)
    assert res.high == pytest.approx(d + 1.96 * se, abs=2e-3)
    assert res.p_value == pytest.approx(2 / (B + 1))  # no resample reaches 0
    back = paired_bootstrap(a, b, n_resamples=B, seed=3)
    assert back.diff == pytest.approx(-d)
    assert back.low == pytest.approx(-res.high, abs=2e-3) and back.high == pytest.approx(-res.low, abs=2e-3)
    assert back.p_value == res.p_value


def test_paired_p_value_matches_the_normal_approximation():
    # discordant pairs: 1045 only a right, 955 only b right, of 20000 (z = 2.01, p = 0.044); large
    # counts keep the bootstrap's mass at exactly 0 (counted in both tails) negligible
    n, n10, n01 = 20_000, 1045, 955
    a = np.zeros(n, bool)
    b = np.zeros(n, bool)
    a[:n10] = True
    b[n10 : n10 + n01] = True
    a[5000:9000] = b[5000:9000] = True  # concordant right answers do not matter
    d = (n10 - n01) / n
    se = math.sqrt(((n10 + n01) / n - d**2) / n)
    res = paired_bootstrap(a, b, n_resamples=B, seed=11)
    assert res.diff == pytest.approx(d)
    assert res.p_value == pytest.approx(math.erfc(abs(d) / se / math.sqrt(2)), abs=8e-3)
    assert res.low == pytest.approx(d - 1.96 * se, abs=2e-4) and res.high == pytest.approx(d + 1.96 * se, abs=2e-4)


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(0)
    for shift in (0, 5, 10, 20, 40):
        a = rng.random(400) < 0.4
        b = a.copy()
        flip = np.flatnonzero(~a)[:shift]
        b[flip] = True
        b[np.flatnonzero(a)[: shift // 2]] = False
        res = paired_bootstrap(b, a, n_resamples=B, seed=shift)
        assert (res.p_value < 0.05) == (res.low > 0 or res.high < 0)


def test_paired_needs_equal_shapes():
    with pytest.raises(ValueError, match="equal shapes"):
        stats.mcnemar_exact_p(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="empty"):
        stats.bootstrap_means(np.array([]), B, np.random.default_rng(0))


def test_determinism_under_the_seed():
    x = bernoulli(321, 0.6)
    one = stats.bootstrap_means(x, 500, stats.rng_for(7, "accuracy", "ct", "gsm8k"))
    two = stats.bootstrap_means(x, 500, stats.rng_for(7, "accuracy", "ct", "gsm8k"))
    other = stats.bootstrap_means(x, 500, stats.rng_for(8, "accuracy", "ct", "gsm8k"))
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, other)
    assert bootstrap_ci(x, 2000, seed=4) == bootstrap_ci(x, 2000, seed=4)


def test_a_rows_numbers_do_not_depend_on_the_other_rows():
    benches = ["gsm8k", "math"]
    p = {(m, b): preds(bernoulli(50, 0.2 + 0.1 * i + 0.05 * j, seed=i * 10 + j)) for i, m in enumerate(["ct", "rho1"]) for j, b in enumerate(benches)}
    both = stats.accuracy_intervals(p, ["ct", "rho1"], benches, 2000, seed=1)
    alone = stats.accuracy_intervals(p, ["rho1"], benches, 2000, seed=1)
    np.testing.assert_array_equal(both[both.model == "rho1"].to_numpy(), alone.to_numpy())


def test_accuracy_intervals_average_row():
    p = {("m", b): preds(bernoulli(400, q, seed=k)) for k, (b, q) in enumerate([("x", 0.2), ("y", 0.6)])}
    table = stats.accuracy_intervals(p, ["m"], ["x", "y"], B, seed=0)
    assert table["benchmark"].tolist() == ["x", "y", "avg"]
    avg = table.set_index("benchmark").loc["avg"]
    assert avg["accuracy"] == pytest.approx(40.0)
    assert avg["n"] == 800
    # mean of two independent means: se = sqrt(se_x^2 + se_y^2) / 2
    se = 100 * math.sqrt(0.2 * 0.8 / 400 + 0.6 * 0.4 / 400) / 2
    assert avg["ci_low"] == pytest.approx(40 - 1.96 * se, abs=0.3)
    assert avg["ci_high"] == pytest.approx(40 + 1.96 * se, abs=0.3)
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()


def test_paired_comparisons_table():
    benches = ["x", "y"]
    base = {b: bernoulli(200, 0.3, seed=k) for k, b in enumerate(benches)}
    p = {}
    for b in benches:
        p["ct", b] = preds(base[b])
        p["same", b] = preds(base[b].copy())
        better = base[b].copy()
        better[np.flatnonzero(~better)[:40]] = True
        p["better", b] = preds(better)
    pairs = stats.comparisons(["ct", "same", "better"], ["ct", "rho1"])
    assert pairs == [("same", "ct"), ("better", "ct")]
    table = stats.paired_comparisons(p, pairs, benches, B, seed=0).set_index(["model", "benchmark"])
    assert table.loc[("same", "avg"), "diff"] == 0 and table.loc[("same", "avg"), "p_value"] == 1
    assert table.loc[("same", "avg"), "p_exact"] == 1
    assert table.loc[("better", "x"), "diff"] == pytest.approx(20.0)
    assert table.loc[("better", "avg"), "p_holm"] < 0.05
    assert (table.loc[("better", "x"), "p_exact"]) == pytest.approx(2 * 0.5**40)  # 40 wins, no loss
    assert (table.loc[("better", "avg"), "p_exact"]) == pytest.approx(2 * 0.5**80)  # both benchmarks pooled
    assert (table["p_holm"] >= table["p_exact"]).all() and (table["p_holm"] <= 1).all()


def discordant_pair(wins: int, losses: int, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Verdicts of two models on n items: 4 both right, then ``wins`` only a right, ``losses`` only b right."""
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    a[:4] = b[:4] = True
    a[4 : 4 + wins] = True
    b[4 + wins : 4 + wins + losses] = True
    return a, b


def test_avg_p_is_exact_mcnemar_over_all_items_and_seeds_not_the_bootstrap():
    """Three benchmarks of 12 items, two seeds: 7 items flip to the model, 1 to the baseline. The
    bootstrap of the benchmark mean calls that significant (p ~ 0.03); McNemar's exact test on the 8
    discordant pairs of all benchmarks and seeds pooled does not: 2 P(X <= 1), X ~ Bin(8, 1/2) = 18/256."""
    from scipy.stats import binomtest

    from rhocluster.reporting.tables import exact_test_note, significance_markdown

    flips = {"x": [(2, 0), (1, 0)], "y": [(1, 0), (1, 1)], "z": [(1, 0), (1, 0)]}  # (wins, losses) per seed
    p = {}
    for bench, per_seed in flips.items():
        for seed, (wins, losses) in enumerate(per_seed):
            p[f"rho1_{seed}", bench], p[f"ct_{seed}", bench] = map(preds, discordant_pair(wins, losses))
    replicates = {"rho1": ["rho1_0", "rho1_1"], "ct": ["ct_0", "ct_1"]}
    table = stats.paired_comparisons(p, [("rho1", "ct")], list(flips), B, seed=0, replicates=replicates)
    avg = table.set_index("benchmark").loc["avg"]
    by_hand = 2 * sum(math.comb(8, k) for k in range(2)) / 2**8
    assert by_hand == 18 / 256 and binomtest(7, 8, 0.5).pvalue == pytest.approx(by_hand)
    assert avg["n"] == 72 and avg["diff"] == pytest.approx(100 * 6 / 72)
    assert avg["p_exact"] == pytest.approx(by_hand)
    assert avg["p_value"] < 0.05 < avg["p_exact"]  # the bootstrap p alone would have called it
    assert avg["ci_low"] > 0  # the bootstrap interval is kept as it was
    exact = table.set_index("benchmark")["p_exact"]
    assert exact[["x", "y", "z"]].tolist() == pytest.approx([2 * 0.5**3, 1.0, 2 * 0.5**2])  # 3-0, 2-1, 2-0
    # Holm over the family (x, y, z, avg) of exact p's: 4 x 18/256, then 3 x 0.25, then 2 x 0.5 capped.
    assert table["p_holm"].tolist() == pytest.approx([0.75, 1.0, 1.0, 4 * 18 / 256])
    md = significance_markdown(table, 0.95, B)
    assert md.splitlines()[-1].endswith(f"p={18 / 256:.3f} |") and "McNemar's exact test" in md
    assert f"p={avg['p_value']:.3f}" not in md
    assert "at least 6 items differ, all one way (a difference of at least 25 points)" in md
    few = exact_test_note(pd.Series([5, 12]))
    assert few.endswith("no benchmark alone can reach p < 0.05: that needs 6 items differing one way.")


@pytest.mark.parametrize(
    ("wins", "losses", "expected"),
    [
        (0, 0, 1.0),
        (5, 0, 2 * 0.5**5),  # 0.0625: the bootstrap p of this case is ~0.01
        (3, 0, 0.25),
        (2, 1, 1.0),
        # 7 vs 1: 2 * P(X <= 1), X ~ Bin(8, 1/2) = 2 * 9 / 256
        (7, 1, 18 / 256),
    ],
)
def test_mcnemar_exact_p_closed_form(wins, losses, expected):
    n = 1000
    a = np.zeros(n, bool)
    b = np.zeros(n, bool)
    a[:wins] = True  # a right, b wrong
    b[wins : wins + losses] = True  # b right, a wrong
    a[500:700] = b[500:700] = True  # agreements do not count
    assert stats.mcnemar_exact_p(a, b) == pytest.approx(expected)
    assert stats.mcnemar_exact_p(b, a) == pytest.approx(expected)
    with pytest.raises(ValueError, match="equal shapes"):
        stats.mcnemar_exact_p(a, b[:-1])


def test_comparisons_each_pair_once():
    pairs = stats.comparisons(["ct", "rho1", "cluster", "random"], ["ct", "rho1"])
    assert pairs == [("rho1", "ct"), ("cluster", "ct"), ("random", "ct"), ("cluster", "rho1"), ("random", "rho1")]
    assert stats.comparisons(["cluster"], ["ct", "rho1"]) == []


def test_holm_by_hand():
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.9]), [1.0, 1.0])
    assert stats.holm([]).size == 0


def test_seed_interval_is_students_t_without_a_document_term():
    """No document term: the interval and p are the one-sample t interval and test of scipy."""
    from scipy import stats as sp

    x = np.array([4.21, 4.35, 4.27])
    est, low, high, p = stats.seed_interval(x)
    want = sp.t.interval(0.95, df=2, loc=x.mean(), scale=sp.sem(x))
    assert est == pytest.approx(x.mean()) and (low, high) == pytest.approx(want, rel=1e-12)
    assert p == pytest.approx(sp.ttest_1samp(x, 0.0).pvalue, rel=1e-9)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.seed_interval([1.0])


def test_seed_interval_adds_the_documents_variance_with_satterthwaite_degrees():
    from scipy import stats as sp

    x = np.array([0.10, 0.16, 0.13])
    docs = np.random.default_rng(0).normal(0.13, 0.02, size=5000)
    s2n, v = x.var(ddof=1) / 3, docs.var(ddof=1)
    df = 2 * ((s2n + v) / s2n) ** 2  # Welch-Satterthwaite, the document term with infinite df
    half = sp.t.ppf(0.975, df) * math.sqrt(s2n + v)
    _, low, high, p = stats.seed_interval(x, docs)
    assert (low, high) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-12)
    assert p == pytest.approx(2 * sp.t.sf(x.mean() / math.sqrt(s2n + v), df), rel=1e-9)
    # no spread at all: a point, p 1 at zero and 0 elsewhere
    assert stats.seed_interval([0.0, 0.0], np.zeros(10)) == (0.0, 0.0, 0.0, 1.0)
    assert stats.seed_interval([2.0, 2.0])[3] == 0.0


def test_seed_interval_covers_a_rerun_of_three_seeds_as_its_level_says():
    """What the percentile bootstrap over 3 seeds failed at: 95% intervals of the mean of 3 normal seeds
    (plus a document term) hold the true mean ~95% of the time; the bootstrap's hold it far less."""
    rng = np.random.default_rng(7)
    trials, hits, boot_hits = 2000, 0, 0
    for _ in range(trials):
        x = rng.normal(0.0, 1.0, size=3)
        docs = rng.normal(x.mean(), 0.3, size=400)
        _, low, high, _ = stats.seed_interval(x, docs)
        hits += low <= 0.0 <= high
        means = x[rng.integers(0, 3, size=(400, 3))].mean(axis=1) + rng.normal(0, 0.3, size=400)
        blo, bhi = stats.percentile_interval(means)
        boot_hits += blo <= 0.0 <= bhi
    assert 0.93 <= hits / trials <= 0.97
    assert boot_hits / trials < 0.88
