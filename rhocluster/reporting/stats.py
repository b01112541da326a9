"""Bootstrap uncertainty of benchmark accuracies and of paired differences between models, and
Student-t intervals of a mean over a few training seeds (``seed_interval``).

Percentile bootstrap (Efron & Tibshirani 1993). A resample of ``n`` items drawn with replacement
has the same distribution of its mean as multinomial counts over the *distinct* values, so
``bootstrap_means`` draws those counts instead of ``n`` indices: exact, vectorised, and memory
O(resamples x distinct values) (2 for verdicts, 3 for paired verdict differences).

The paired bootstrap resamples problems jointly: it bootstraps the per-item differences
``a_i - b_i``. Its two-sided p-value inverts the percentile interval, so that p < 1 - level exactly
when that interval excludes 0 (up to the +1 correction that keeps p > 0). With few discordant items
that p is far too small (5 items flipping one way: ~0.01 against the exact 0.0625), so the paired
tables test with McNemar's exact test (``mcnemar_exact_p``) and keep the bootstrap for intervals.

Every draw comes from a generator seeded by the config seed and the names of what it concerns
(``rng_for``), so a row's numbers do not depend on which other models or benchmarks are present.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rhocluster.reporting.evals import Predictions, check_same_items, load_evaluation

DEFAULT_RESAMPLES = 10_000
LEVEL = 0.95
AVG = "avg"
_MAX_CELLS = 1 << 22  # bound on one multinomial draw's array (resamples x distinct values)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and ``names`` (CRC32, stable across processes, unlike ``hash``)."""
    return np.random.default_rng([int(seed), *(zlib.crc32(name.encode("utf-8")) for name in names)])


def bootstrap_means(values: np.ndarray | Sequence[float], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """float64 [n_resamples]: means of ``values`` (any shape, flattened, n > 0) resampled with replacement."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("cannot bootstrap an empty sample")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    distinct, counts = np.unique(x, return_counts=True)
    p = counts / x.size
    out = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, _MAX_CELLS // distinct.size)
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        out[start : start + m] = rng.multinomial(x.size, p, size=m) @ distinct / x.size
    return out


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``draws``."""
    _check_level(level)
    alpha = 1.0 - level
    low, high = np.quantile(draws, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


def bootstrap_p_value(draws: np.ndarray) -> float:
    """Two-sided p-value of 'the statistic is 0' from bootstrap ``draws`` of it (percentile inversion).

    p = min(1, 2 min(P*(d <= 0), P*(d >= 0))), each tail with the +1 correction (B + 1 denominator).
    """
    b = draws.size
    below = (1 + np.count_nonzero(draws <= 0.0)) / (b + 1)
    above = (1 + np.count_nonzero(draws >= 0.0)) / (b + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def seed_interval(
    per_seed: Sequence[float], document_draws: np.ndarray | None = None, level: float = LEVEL
) -> tuple[float, float, float, float]:
    """(estimate, low, high, p) of the mean of a statistic over ``n >= 2`` training seeds.

    The estimate is the mean of ``per_seed`` (each seed's statistic on all documents). Its variance adds
    the seeds' spread and the finite test set: ``se² = s²/n + v``, ``s²`` the seeds' sample variance and
    ``v`` the variance of ``document_draws`` (the seed mean on bootstrap resamples of the documents,
    seeds fixed; none: no document term). The interval is ``estimate ± t·se`` with Student's t at the
    Welch-Satterthwaite degrees of freedom ``(n - 1)(se² / (s²/n))²`` (``v`` taken as exact), and ``p``
    the two-sided p of 'the mean is 0' on the same t. Written here because no library combines the two
    terms: with few seeds a percentile bootstrap over them (3 seeds: 10 distinct multisets, variance
    (n - 1)/n of the sample's, normal-like quantiles) understates the seed-to-seed spread, which a rerun
    on other float kernels draws anew (docs/performance.md); t with n - 1 degrees of freedom is the
    standard small-sample correction.
    """
    from scipy.stats import t as student_t

    x = np.asarray(per_seed, dtype=np.float64)
    if x.size < 2:
        raise ValueError(f"an interval over seeds needs at least 2 seeds, got {x.size}")
    _check_level(level)
    estimate = float(x.mean())
    seeds = float(x.var(ddof=1)) / x.size
    documents = 0.0 if document_draws is None else float(np.var(document_draws, ddof=1))
    se2 = seeds + documents
    if se2 <= 0.0:
        return estimate, estimate, estimate, 1.0 if estimate == 0.0 else 0.0
    df = np.inf if seeds == 0.0 else (x.size - 1) * (se2 / seeds) ** 2
    se = float(np.sqrt(se2))
    half = float(student_t.ppf(0.5 + level / 2, df)) * se
    return estimate, estimate - half, estimate + half, float(2.0 * student_t.sf(abs(estimate) / se, df))


def mcnemar_exact_p(a: np.ndarray | Sequence[bool], b: np.ndarray | Sequence[bool]) -> float:
    """Exact two-sided McNemar p-value of 'models a and b are equally accurate' from paired 0/1
    verdicts: a binomial test at 1/2 of the discordant items (a right and b wrong, against the reverse).

    Unlike the bootstrap p it stays valid when few items differ (5 of 1000 flipping one way gives
    0.0625 here, ~0.01 by bootstrap).
    """
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}")
    wins, losses = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(~a & b))
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (same order as given), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def load_all_predictions(
    evals: Mapping[tuple[str, str], tuple[Path | str, Path | str]],
) -> dict[tuple[str, str], Predictions]:
    """``{(model, benchmark): (summary.json, predictions.jsonl)}`` -> checked predictions; all models
    must hold the same items (and prompts) per benchmark."""
    preds = {key: load_evaluation(summary, predictions)[1] for key, (summary, predictions) in evals.items()}
    first: dict[str, Predictions] = {}
    for (_, bench), p in preds.items():
        if bench in first:
            check_same_items(first[bench], p)
        else:
            first[bench] = p
    return preds


def accuracy_intervals(
    preds: Mapping[tuple[str, str], Predictions],
    models: Sequence[str],
    benchmarks: Sequence[str],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    replicates: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Accuracy (%) and its bootstrap interval per model and benchmark, plus ``avg``, the plain mean
    over benchmarks (benchmarks resampled independently). Columns: model, benchmark, n, accuracy,
    ci_low, ci_high. With ``replicates`` (``{row: [model of each seed]}``) a row pools the verdicts of
    its seeds, so its interval covers the seeds too."""
    rows = []
    for model in models:
        all_draws = []
        for bench in benchmarks:
            verdict = _pooled(preds, replicates, model, bench)
            draws = 100.0 * bootstrap_means(verdict, n_resamples, rng_for(seed, "accuracy", model, bench))
            all_draws.append(draws)
            low, high = percentile_interval(draws, level)
            rows.append((model, bench, verdict.size, 100.0 * verdict.mean(), low, high))
        if len(benchmarks) > 1:
            point = float(np.mean([r[3] for r in rows[-len(benchmarks) :]]))
            low, high = percentile_interval(np.mean(all_draws, axis=0), level)
            rows.append((model, AVG, sum(r[2] for r in rows[-len(benchmarks) :]), point, low, high))
    return pd.DataFrame(rows, columns=["model", "benchmark", "n", "accuracy", "ci_low", "ci_high"])


def _pooled(
    preds: Mapping[tuple[str, str], Predictions], replicates: Mapping[str, Sequence[str]] | None, row: str, bench: str
) -> np.ndarray:
    """Verdicts of a row on a benchmark, its seeds' models concatenated (the row itself without replicates)."""
    return np.concatenate([preds[m, bench].verdict for m in (replicates or {}).get(row, [row])])


def comparisons(variants: Sequence[str], baselines: Sequence[str]) -> list[tuple[str, str]]:
    """(variant, baseline) pairs: every variant against every baseline, each unordered pair once
    (the first baseline listed wins, e.g. rho1 vs ct rather than ct vs rho1)."""
    pairs: list[tuple[str, str]] = []
    for base in baselines:
        if base not in variants:
            continue
        for v in variants:
            if v != base and (base, v) not in pairs:
                pairs.append((v, base))
    return pairs


def paired_comparisons(
    preds: Mapping[tuple[str, str], Predictions],
    pairs: Sequence[tuple[str, str]],
    benchmarks: Sequence[str],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    replicates: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Accuracy(model) - accuracy(baseline), in points, per benchmark and ``avg``: paired bootstrap
    intervals and exact McNemar tests. With ``replicates`` the rows pool their seeds: seed i of the model
    against seed i of the baseline (same data order), over the seeds both have, each (item, seed) one
    pair (one resampling unit).

    Columns: model, baseline, benchmark, n, diff, ci_low, ci_high (``avg``: the plain mean of the
    benchmarks' differences, benchmarks resampled independently), p_value (bootstrap, the interval
    inverted; for reference only: it is far too small when few items differ), p_exact (exact McNemar
    over the benchmark's pairs; for ``avg`` over every benchmark's pairs pooled), p_holm (p_exact
    Holm-adjusted within each baseline's family of tests, ``avg`` rows included).
    """
    rows = []
    for model, base in pairs:
        all_draws, diffs, all_a, all_b = [], [], [], []
        for bench in benchmarks:
            seeds = list(zip(*((replicates or {}).get(r, [r]) for r in (model, base))))
            for m, b in seeds:
                check_same_items(preds[m, bench], preds[b, bench])
            va = np.concatenate([preds[m, bench].verdict for m, _ in seeds])
            vb = np.concatenate([preds[b, bench].verdict for _, b in seeds])
            d = va.astype(np.float64) - vb.astype(np.float64)
            draws = 100.0 * bootstrap_means(d, n_resamples, rng_for(seed, "paired", model, base, bench))
            all_draws.append(draws)
            diffs.append(100.0 * d.mean())
            all_a.append(va)
            all_b.append(vb)
            exact = mcnemar_exact_p(va, vb)
            rows.append((model, base, bench, d.size, diffs[-1], *percentile_interval(draws, level), bootstrap_p_value(draws), exact))
        if len(benchmarks) > 1:
            draws = np.mean(all_draws, axis=0)
            va, vb = np.concatenate(all_a), np.concatenate(all_b)  # every benchmark's pairs: one exact test
            interval = percentile_interval(draws, level)
            exact = mcnemar_exact_p(va, vb)
            rows.append((model, base, AVG, va.size, float(np.mean(diffs)), *interval, bootstrap_p_value(draws), exact))
    columns = ["model", "baseline", "benchmark", "n", "diff", "ci_low", "ci_high", "p_value", "p_exact"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_holm"] = np.nan
    for _, idx in table.groupby("baseline", sort=False).groups.items():
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p_exact"].to_numpy())
    return table
