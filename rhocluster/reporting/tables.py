"""Results tables: accuracy per model and benchmark beside the published rows, kept fraction per
ground-truth label, and the bootstrap intervals and paired tests of ``rhocluster.reporting.stats``."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rhocluster.common.atomic import save_text
from rhocluster.reporting import stats
from rhocluster.reporting.evals import load_evaluation, read_json
from rhocluster.reporting.published import PUBLISHED
from rhocluster.workflow.variants import builtin_table

# Column order of the seed proposal: GSM8K, SVAMP, ASDiv, MAWPS, TAB, MQA, MMLU STEM, SAT, MATH.
COLUMNS: dict[str, str] = {
    "gsm8k": "GSM8K",
    "svamp": "SVAMP",
    "asdiv": "ASDiv",
    "mawps": "MAWPS",
    "tabmwp": "TAB",
    "mathqa": "MQA",
    "mmlu_stem": "MMLU STEM",
    "sat_math": "SAT",
    "math": "MATH",
}
# Row names of the tables are the model ids of the config and README; figure legends add the short
# label of the two fixed models and of each variant's row (rhocluster/workflow/variants.yaml).
MODEL_DESCRIPTIONS: dict[str, str] = {
    "base": "before CPT",
    "reference": "HQ fine-tune",
    **{name: row["label"] for name, row in builtin_table().items()},
}
EvalPaths = Mapping[tuple[str, str], tuple[Path | str, Path | str]]


def model_label(model: str) -> str:
    """A model id with its short description, for figure legends (the id itself when unknown)."""
    return f"{model} ({MODEL_DESCRIPTIONS[model]})" if model in MODEL_DESCRIPTIONS else model


def ordered_benchmarks(benchmarks: Sequence[str]) -> list[str]:
    """``benchmarks`` in the seed's column order (unknown ids last, in their given order)."""
    known = [b for b in COLUMNS if b in benchmarks]
    return known + [b for b in benchmarks if b not in COLUMNS]


def overlong_note(evals: EvalPaths) -> str:
    """A sentence counting the items whose prompt filled the model's context alone (nothing generated,
    counted wrong: ``generation.overlong_prompts`` of each summary), per benchmark; '' when there are none."""
    overlong: dict[str, int] = {}
    asked: dict[str, int] = {}
    for (_, bench), (summary_path, _) in evals.items():
        summary = read_json(Path(summary_path))
        overlong[bench] = overlong.get(bench, 0) + int(summary.get("generation", {}).get("overlong_prompts", 0))
        asked[bench] = asked.get(bench, 0) + int(summary["n"])
    parts = [f"{COLUMNS.get(b, b)} {overlong[b]} of {asked[b]}" for b in ordered_benchmarks(list(overlong)) if overlong[b]]
    if not parts:
        return ""
    return (
        " Prompts longer than the model's context, not truncated but answered with nothing and counted wrong "
        f"(items over all models): {', '.join(parts)}."
    )


def load_accuracies(evals: EvalPaths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``{(model, benchmark): (summary.json, predictions.jsonl)}`` -> (accuracy %, n), each [model x benchmark].

    Every summary is checked against its predictions; a benchmark whose item counts differ between
    models fails, naming the files.
    """
    acc: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    first: dict[str, tuple[int, Path | str]] = {}
    for (model, bench), (summary_path, predictions_path) in evals.items():
        summary, _ = load_evaluation(summary_path, predictions_path)
        n = summary["n"]
        if bench in first and first[bench][0] != n:
            raise ValueError(f"{summary_path}: {n} items, but {first[bench][1]} has {first[bench][0]} for {bench}")
        first.setdefault(bench, (n, summary_path))
        acc.setdefault(model, {})[bench] = float(summary["accuracy"])
        counts.setdefault(model, {})[bench] = n
    return pd.DataFrame.from_dict(acc, orient="index"), pd.DataFrame.from_dict(counts, orient="index")


def accuracy_table(
    acc: pd.DataFrame,
    models: Sequence[str],
    benchmarks: Sequence[str],
    source: str,
    replicates: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Rows in ``models`` order, benchmarks in the seed's order, ``avg``, then a ``source`` column.

    With ``replicates`` (``{row: [model of each seed]}``) a row is the mean over its seeds, and where any
    row has several, ``seeds`` and ``avg sd`` (the standard deviation of avg over seeds) columns follow avg.
    """
    cols = ordered_benchmarks(benchmarks)
    reps = {m: list((replicates or {}).get(m, [m])) for m in models}
    needed = [r for rs in reps.values() for r in rs]
    missing = [(m, b) for m in needed for b in cols if m not in acc.index or b not in acc.columns or pd.isna(acc.at[m, b])]
    if missing:
        raise ValueError(f"no evaluation for (model, benchmark) {missing[:5]}")
    per_model = acc.reindex(index=needed, columns=cols).astype(float)
    per_model["avg"] = per_model[cols].mean(axis=1)
    table = pd.DataFrame({row: per_model.loc[rs].mean() for row, rs in reps.items()}).T
    if any(len(rs) > 1 for rs in reps.values()):
        table["seeds"] = [len(rs) for rs in reps.values()]
        table["avg sd"] = [per_model.loc[rs, "avg"].std(ddof=1) if len(rs) > 1 else np.nan for rs in reps.values()]
    table["source"] = source
    return table.rename(columns=COLUMNS)


def published_table(benchmarks: Sequence[str]) -> pd.DataFrame:
    """The published rows (rhocluster.reporting.published), same columns; avg = plain mean over the shown benchmarks."""
    cols = ordered_benchmarks(benchmarks)
    table = pd.DataFrame([row.accuracy for row in PUBLISHED], index=[row.model for row in PUBLISHED])
    table = table.reindex(columns=cols).astype(float)
    table["avg"] = table[cols].mean(axis=1, skipna=False)
    # The source prints no average for some rows: say that ours is computed, not quoted.
    table["source"] = [row.source + ("" if row.reported_avg is not None else "; avg computed here") for row in PUBLISHED]
    return table.rename(columns=COLUMNS)


def _kept_by_model(summaries: Mapping[str, Path | str]) -> pd.DataFrame:
    """``{model: train summary.json}`` -> kept fraction (%) of each ground-truth label and overall, per model."""
    rows = {}
    for model, path in summaries.items():
        data = read_json(Path(path))
        if "kept_fraction" not in data:
            raise ValueError(f"{path}: training summary lacks key kept_fraction")
        by_label = data.get("kept_fraction_by_label")
        if by_label is None:
            continue
        row = {k: (np.nan if v is None else 100.0 * v) for k, v in by_label.items()}
        row["all"] = 100.0 * data["kept_fraction"]
        rows[model] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _seed_means(table: pd.DataFrame, replicates: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per variant: the mean over the rows of its seeds' models."""
    return pd.DataFrame({v: table.loc[[m for m in ms if m in table.index]].mean() for v, ms in replicates.items()}).T


def label_table(summaries: Mapping[str, Path | str], replicates: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """``{model: train summary.json}`` -> kept fraction (%) of each ground-truth label, plus overall; with
    ``replicates`` (``{variant: [model of each seed]}``) one row per variant, the mean over its seeds."""
    table = _kept_by_model(summaries)
    if replicates and not table.empty:
        table = _seed_means(table, replicates)
    return table


def label_cells(summaries: Mapping[str, Path | str], replicates: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """The kept-fraction table as printed: a variant with several seeds shows their mean and its 95%
    interval over them (:func:`rhocluster.reporting.stats.seed_interval`, Student's t over the seeds,
    clipped to [0, 100]); one seed its value."""
    table = _kept_by_model(summaries)
    if not replicates or table.empty:
        return table
    cells: dict[str, dict[str, object]] = {}
    for variant, models in replicates.items():
        rows = table.loc[[m for m in models if m in table.index]]
        for col in table.columns:
            values = rows[col].dropna().to_numpy()
            if values.size > 1:
                mean, low, high, _ = stats.seed_interval(values)
                cell: object = f"{mean:.1f} [{max(low, 0.0):.1f}, {min(high, 100.0):.1f}]"
            else:
                cell = float(values[0]) if values.size else np.nan
            cells.setdefault(col, {})[variant] = cell
    return pd.DataFrame(cells, columns=list(table.columns))


NO_LABELS = "No ground-truth token labels in this corpus: the kept fraction per label cannot be counted."


def _excess_cell(stats: Mapping | None) -> str:
    if not stats or stats.get("mean") is None:
        return "—"
    return f"{stats['mean']:.2f} [{stats['q10']:.2f}, {stats['q50']:.2f}, {stats['q90']:.2f}]"


def _leaves_cell(mask: Mapping) -> str:
    """How a static mask spreads over the leaf clusters, from its summary (balanced or leaf-excess rows)."""
    if "levels" in mask:
        leaf = mask["levels"]["levels"][0]
        return (
            f"{leaf['n_nonempty_after']} of {leaf['n_nonempty_before']} leaves kept from; "
            f"kept fraction {leaf['kept_fraction_min']:.2f}–{leaf['kept_fraction_max']:.2f} per leaf"
        )
    if "leaves" in mask:
        return (
            f"{mask['leaves_kept_whole']} of {mask['leaves']} leaves kept whole, {mask['leaves_kept_partly']} partly, "
            f"{mask['leaves_dropped']} dropped"
        )
    return "—"


def unlabelled_table(
    summaries: Mapping[str, Path | str],
    mask_summaries: Mapping[str, Path | str],
    replicates: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """What can be said of each variant's selection without labels: the kept fraction (%, counted by the
    trainer; mean over seeds), the fixed excess loss (base - reference) of the kept and of the dropped
    tokens (mean [10%, 50%, 90%], static masks ranked or filled by it) and the spread over the leaf
    clusters (static masks that read the tree; the first seed's mask)."""
    reps = {v: list(ms) for v, ms in (replicates or {m: [m] for m in summaries}).items()}
    rows = {}
    for variant, models in reps.items():
        kept = []
        for m in models:
            data = read_json(Path(summaries[m]))
            if "kept_fraction" not in data:
                raise ValueError(f"{summaries[m]}: training summary lacks key kept_fraction")
            kept.append(100.0 * data["kept_fraction"])
        mask = read_json(Path(mask_summaries[variant])) if variant in mask_summaries else {}
        excess = mask.get("excess_loss", {})
        rows[variant] = {
            "kept (%)": float(np.mean(kept)),
            "excess loss of kept tokens": _excess_cell(excess.get("kept")),
            "of dropped tokens": _excess_cell(excess.get("dropped")),
            "leaf clusters": _leaves_cell(mask),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def unlabelled_markdown(table: pd.DataFrame) -> str:
    """The labels page of an unlabelled corpus: it says so, then what can be said without labels."""
    return (
        f"{NO_LABELS} What can be said without them: the share of the training tokens each variant kept "
        "(counted by the trainer; mean over seeds), the fixed excess loss (base minus reference loss, nats) of "
        "the tokens a static mask kept and of those it dropped as mean [10%, 50%, 90% quantiles] (masks ranked "
        "or filled by it; random draws and live selection have none), and how a mask that reads the cluster "
        "tree spreads over its leaves (the first seed's tree).\n\n" + to_markdown(table, "variant")
    )


def _cell(value: object, digits: int) -> str:
    if isinstance(value, str):
        return value
    return "—" if pd.isna(value) else f"{value:.{digits}f}"


def to_markdown(table: pd.DataFrame, first_col: str, digits: int = 1) -> str:
    """GitHub Markdown table (no tabulate dependency); numbers to ``digits``, missing values as an em dash."""
    header = [first_col, *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        lines.append("| " + " | ".join([str(name), *(_cell(v, digits) for v in row.tolist())]) + " |")
    return "\n".join(lines) + "\n"


def _csv(table: pd.DataFrame, index_label: str | None) -> str:
    return table.to_csv(index=index_label is not None, index_label=index_label, float_format="%.4f", lineterminator="\n")


def variant_table(variants: Mapping[str, Mapping[str, object]]) -> pd.DataFrame:
    """The run's rows of the variant table (``{name: {tokens, mask, label, summary, ...}}``), one per
    variant in order, with the columns every row has (missing values empty)."""
    columns = ["tokens", "mask", "leaf_policy", "group_level", "shrinkage", "label", "summary"]
    table = pd.DataFrame([{c: row.get(c) for c in columns} for row in variants.values()], index=list(variants))
    return table.rename(columns={"summary": "what is ranked, when and over which tokens"})


def write_tables(
    evals: EvalPaths,
    summaries: Mapping[str, Path | str],
    models: Sequence[str],
    benchmarks: Sequence[str],
    run: str,
    out: Mapping[str, Path | str],
    replicates: Mapping[str, Sequence[str]] | None = None,
    label_replicates: Mapping[str, Sequence[str]] | None = None,
    variants: Mapping[str, Mapping[str, object]] | None = None,
    mask_summaries: Mapping[str, Path | str] | None = None,
) -> None:
    """Write ``results_md``/``results_csv`` (ours, then the published rows, each row labelled with its
    source), ``labels_md``/``labels_csv`` and, given ``variants`` (the run's variant-table rows),
    ``variants_csv``. ``evals``: ``{(model, benchmark): (summary, predictions)}``; ``models`` are the rows,
    ``replicates`` their evaluated models (one per seed), ``label_replicates`` the variants' trained
    models (one per seed). Without token labels the labels page says so and gives
    :func:`unlabelled_table` (``mask_summaries``: ``{variant: masks/<variant>/summary.json}``)."""
    if variants is not None:
        save_text(out["variants_csv"], _csv(variant_table(variants), "variant"))
    acc, counts = load_accuracies(evals)
    ours = accuracy_table(acc, models, benchmarks, f"this workflow, run {run}", replicates)
    both = pd.concat([ours, published_table(benchmarks)])
    cols = ordered_benchmarks(benchmarks)
    n_line = ", ".join(f"{COLUMNS.get(b, b)} {int(counts[b].iloc[0])}" for b in cols)
    md = (
        f"Few-shot chain-of-thought accuracy (%), greedy decoding; avg is the plain mean of the columns. "
        f"Rows from run `{run}` are computed by the workflow (items per benchmark: {n_line}); rows marked "
        "*published* are copied from the papers (TinyLlama-1.1B scale; CT and Rho-1 after 15B tokens) and "
        f"compare with the real configuration, not with a tiny run.{overlong_note(evals)}\n\n"
        + to_markdown(both, "model")
    )
    save_text(out["results_md"], md)
    save_text(out["results_csv"], _csv(both, "model"))
    labels = label_table(summaries, label_replicates)
    if labels.empty:
        labels = unlabelled_table(summaries, mask_summaries or {}, label_replicates)
        labels_md = unlabelled_markdown(labels) if not labels.empty else NO_LABELS + "\n"
    else:
        labels_md = (
            "Kept fraction (%) of the training tokens of each ground-truth label, per variant "
            "(counted by the trainer over all tokens it saw). It shows what each selection keeps, exactly and "
            "at any scale, but not whether keeping it helps: that is the held-out loss and the benchmarks' "
            "question. A variant trained on several seeds shows the mean of its seeds and its [95% interval] "
            "(Student's t over the seeds).\n\n" + to_markdown(label_cells(summaries, label_replicates), "variant")
        )
    save_text(out["labels_md"], labels_md)
    save_text(out["labels_csv"], _csv(labels, "variant"))


def _interval(estimate: float, low: float, high: float, signed: bool = False) -> str:
    fmt = "+.1f" if signed else ".1f"
    return f"{estimate:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def resolution_note(items: pd.Series) -> str:
    """What accuracies on so few items can show: the widest 95% half-width of one benchmark's accuracy
    (p = 0.5, normal approximation), from its fewest items."""
    n = int(items.min())
    half = 100 * 1.96 * (0.25 / n) ** 0.5
    return (
        f"What it can show here: with {n} items a benchmark's accuracy is uncertain by up to ±{half:.0f} points, "
        "so only differences larger than that can be told apart from chance."
    )


def ci_markdown(ci: pd.DataFrame, level: float, n_resamples: int) -> str:
    """Accuracy with its interval, one row per model, benchmarks in columns."""
    cells = ci.assign(cell=[_interval(*r) for r in ci[["accuracy", "ci_low", "ci_high"]].itertuples(index=False)])
    wide = cells.pivot(index="model", columns="benchmark", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(ci["model"])), columns=list(dict.fromkeys(ci["benchmark"])))
    wide = wide.rename(columns=COLUMNS)
    return (
        f"Accuracy (%) with {100 * level:.0f}% percentile bootstrap intervals ({n_resamples} resamples of the "
        "items of each benchmark; avg resamples the benchmarks independently). An interval collapses to a "
        "point where every item got the same verdict (e.g. 0 of 12): that is the bootstrap's limit on few items, "
        f"not certainty. {resolution_note(ci['n'])}\n\n" + to_markdown(wide, "model")
    )


def exact_test_note(items: pd.Series, alpha: float = 0.05) -> str:
    """What McNemar's exact test can show on ``items`` pairs per benchmark (its fewest): its p is at
    least 2 x 0.5^d with d discordant pairs, so p < ``alpha`` needs d >= d_min, all one way."""
    n = int(items.min())
    d_min = next(d for d in range(1, 64) if 2 * 0.5**d < alpha)
    if n < d_min:
        return f"With {n} pairs no benchmark alone can reach p < {alpha:g}: that needs {d_min} items differing one way."
    return (
        f"With {n} pairs a benchmark alone reaches p < {alpha:g} only if at least {d_min} items differ, all one "
        f"way (a difference of at least {100 * d_min / n:.0f} points); the pooled avg test can see smaller, "
        "consistent ones."
    )


def significance_markdown(sig: pd.DataFrame, level: float, n_resamples: int) -> str:
    """Paired differences against each baseline, one table per baseline: bootstrap interval and exact
    McNemar p (``p_exact``) in every cell."""
    if sig.empty:
        return "No paired comparisons (the baselines ct and rho1 are not among the variants).\n"
    per_bench = sig.loc[sig["benchmark"] != stats.AVG, "n"]
    parts = [
        f"Paired accuracy differences (percentage points, variant minus baseline) with {100 * level:.0f}% "
        f"paired bootstrap percentile intervals (the same items resampled for both models, {n_resamples} "
        "resamples; avg: the plain mean of the columns, benchmarks resampled independently) and a two-sided "
        "p from McNemar's exact test (binomial at 1/2 of the items one model gets right and the other wrong; "
        "seeds pooled, each item of each seed one pair): per benchmark over its items, and for avg over all "
        "benchmarks' items pooled, so avg's p weighs benchmarks by their items. The bootstrap p is not used: "
        "it is far too small when few items differ. * where the Holm adjustment of p (over all rows against "
        f"that baseline) is below 0.05. {resolution_note(per_bench)} {exact_test_note(per_bench)}\n"
    ]
    for base, group in sig.groupby("baseline", sort=False):
        cells = group.assign(
            cell=[
                _interval(d, lo, hi, signed=True) + f" p={_p(pe)}" + ("*" if ph < 0.05 else "")
                for d, lo, hi, pe, ph in group[["diff", "ci_low", "ci_high", "p_exact", "p_holm"]].itertuples(
                    index=False
                )
            ]
        )
        wide = cells.pivot(index="model", columns="benchmark", values="cell")
        wide = wide.reindex(index=list(dict.fromkeys(group["model"])), columns=list(dict.fromkeys(group["benchmark"])))
        parts.append(f"\nAgainst {base}:\n\n" + to_markdown(wide.rename(columns=COLUMNS), "variant"))
    return "".join(parts)


def write_significance(
    evals: EvalPaths,
    models: Sequence[str],
    variants: Sequence[str],
    baselines: Sequence[str],
    benchmarks: Sequence[str],
    out: Mapping[str, Path | str],
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = stats.LEVEL,
    replicates: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Write ``ci_md``/``ci_csv`` (accuracy intervals of every row) and ``significance_md``/``significance_csv``
    (paired bootstrap of each variant against each baseline) from the predictions files. ``models`` are
    the rows; ``replicates`` maps a row to its evaluated models, one per seed (pooled)."""
    preds = stats.load_all_predictions(evals)
    cols = ordered_benchmarks(benchmarks)
    ci = stats.accuracy_intervals(preds, models, cols, n_resamples, seed, level, replicates)
    pairs = stats.comparisons(variants, baselines)
    sig = stats.paired_comparisons(preds, pairs, cols, n_resamples, seed, level, replicates)
    save_text(out["ci_md"], ci_markdown(ci, level, n_resamples))
    save_text(out["ci_csv"], _csv(ci, None))
    save_text(out["significance_md"], significance_markdown(sig, level, n_resamples))
    save_text(out["significance_csv"], _csv(sig, None))
