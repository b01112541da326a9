"""Held-out loss: every model's mean token loss on text never trained on, per ground-truth label, with
bootstrap intervals over documents (and over training seeds where a variant has several), and paired
differences against the baselines.

The held-out sets are tokenized shards like the training ones (``heldout_web``: the web corpus' kind of
text, labelled per token in the generated corpus; ``heldout_hq``: problem/solution text like the
reference mixture). A column is a set of target tokens: one per label of the web set (all its tokens
when it carries no labels) and one for the problem/solution set. Its statistic is the mean loss over
its tokens (sum of losses / number of tokens). Documents are the resampling unit (tokens of a document
are not independent); they are recovered from the EOS that ends each one (windows are consecutive cuts of
the document stream).

A variant trained with several seeds is the mean of its seeds' statistics; its bootstrap resamples the
seeds and the documents together, so the interval carries both the seed-to-seed spread and the finite
test set. A paired difference compares seed i of a variant with seed i of the baseline (same data order)
on the same resampled documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rhocluster.corpus.labels import LABELS
from rhocluster.data.shards import Shard, load_aligned
from rhocluster.reporting.stats import LEVEL, bootstrap_p_value, percentile_interval, rng_for

PROBLEMS = "problems"  # the column of the held-out problem/solution set
WEB_ALL = "web (all)"
_CHUNK = 512  # bootstrap draws per matrix product


@dataclass
class HeldoutColumn:
    """Per-document sums of one column: ``loss[m]`` float64 [n_docs] summed token losses of model m,
    ``count`` int64 [n_docs] tokens per document."""

    loss: dict[str, np.ndarray]
    count: np.ndarray

    def mean(self, model: str) -> float:
        return float(self.loss[model].sum() / self.count.sum())


def document_ids(tokens: np.ndarray, eos_id: int) -> np.ndarray:
    """int64 [W, S]: document index of every token of a shard (a document ends with its EOS)."""
    flat = np.asarray(tokens).reshape(-1)
    ends = flat == eos_id
    doc = np.concatenate([[0], np.cumsum(ends)[:-1]])
    return doc.reshape(np.asarray(tokens).shape).astype(np.int64)


def load_columns(
    shards: Mapping[str, Sequence[str]], losses: Mapping[str, Mapping[str, Sequence[str]]], eos_id: int
) -> dict[str, HeldoutColumn]:
    """Columns of the held-out sets: ``shards[split]`` lists shard prefixes of ``heldout_web`` and
    ``heldout_hq``; ``losses[model][split]`` the model's per-token loss files of those shards (float16
    [W, S], as ``score_shard`` writes them)."""
    columns: dict[str, HeldoutColumn] = {}
    models = list(losses)
    for split, prefixes in shards.items():
        parts: dict[str, list] = {}
        offset = 0
        for i, prefix in enumerate(prefixes):
            shard = Shard(prefix)
            valid = shard.target_mask()
            doc = document_ids(shard.windows(), eos_id)[valid] + offset
            offset = int(doc.max()) + 1 if doc.size else offset
            if split == "heldout_web" and shard.meta.has_labels:
                lab = shard.labels()[valid]
                names = {j: name for j, name in enumerate(LABELS)}
                groups = [(names[j], lab == j) for j in np.unique(lab) if j in names]
                groups.append((WEB_ALL, np.ones(doc.shape, bool)))
            else:
                groups = [(WEB_ALL if split == "heldout_web" else PROBLEMS, np.ones(doc.shape, bool))]
            token_loss = {
                m: load_aligned(losses[m][split][i], shard.shape, np.float16, f"held-out loss of {m}")[valid].astype(
                    np.float64
                )
                for m in models
            }
            for m, x in token_loss.items():
                if not np.isfinite(x).all():
                    raise ValueError(f"{losses[m][split][i]}: non-finite loss at a target token")
            for name, sel in groups:
                parts.setdefault(name, []).append((doc[sel], {m: x[sel] for m, x in token_loss.items()}))
        for name, pieces in parts.items():
            n_docs = max(int(d.max()) + 1 for d, _ in pieces if d.size)
            count = sum(np.bincount(d, minlength=n_docs) for d, _ in pieces)
            keep = count > 0
            loss = {m: sum(np.bincount(d, weights=x[m], minlength=n_docs) for d, x in pieces)[keep] for m in models}
            columns[name] = HeldoutColumn(loss=loss, count=count[keep].astype(np.int64))
    order = [*(n for n in LABELS if n in columns), *(n for n in (WEB_ALL, PROBLEMS) if n in columns)]
    return {name: columns[name] for name in order}


def _draws(column: HeldoutColumn, seeds: Sequence[Sequence[str]], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """float64 [n_resamples]: bootstrap draws of mean over seed groups of sum_i sign * statistic.

    ``seeds`` is a list of seed replicates, each a list of models whose statistics are summed with signs
    given by a leading '-' (``["cluster.s1", "-ct.s1"]`` is a paired difference)."""
    n_docs = column.count.size
    signed = [[(m[1:], -1.0) if m.startswith("-") else (m, 1.0) for m in rep] for rep in seeds]
    out = np.empty(n_resamples)
    p = np.full(n_docs, 1.0 / n_docs)
    for start in range(0, n_resamples, _CHUNK):
        b = min(_CHUNK, n_resamples - start)
        pick = rng.integers(0, len(seeds), size=(b, len(seeds)))  # seeds resampled with replacement
        w = rng.multinomial(n_docs, p, size=b).astype(np.float64)  # documents resampled with replacement
        denom = w @ column.count
        per_seed = np.stack(
            [sum(sign * (w @ column.loss[m]) for m, sign in rep) / denom for rep in signed], axis=1
        )  # [b, n_seeds]
        out[start : start + b] = np.take_along_axis(per_seed, pick, axis=1).mean(axis=1)
    return out


def _point(column: HeldoutColumn, seeds: Sequence[Sequence[str]]) -> float:
    """The statistic on the full data: mean over seed replicates of the signed sums of model means."""
    vals = [sum((-column.mean(m[1:]) if m.startswith("-") else column.mean(m)) for m in rep) for rep in seeds]
    return float(np.mean(vals))


@dataclass(frozen=True)
class Estimate:
    estimate: float
    low: float
    high: float
    p: float | None
    seeds: int


def estimate(
    column: HeldoutColumn,
    seeds: Sequence[Sequence[str]],
    n_resamples: int,
    rng: np.random.Generator,
    level: float = LEVEL,
    paired: bool = False,
) -> Estimate:
    """Point estimate, percentile interval and (paired: two-sided bootstrap p of 0) of a statistic."""
    draws = _draws(column, seeds, n_resamples, rng)
    low, high = percentile_interval(draws, level)
    return Estimate(_point(column, seeds), low, high, bootstrap_p_value(draws) if paired else None, len(seeds))


def heldout_tables(
    columns: Mapping[str, HeldoutColumn],
    replicates: Mapping[str, Sequence[str]],
    baselines: Sequence[str],
    n_resamples: int,
    seed: int,
    level: float = LEVEL,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(losses, differences) in long form.

    ``replicates[row]`` lists the models of a row, one per training seed (base and reference: one).
    losses: row, column, estimate, low, high, seeds. differences: variant, baseline, column, estimate,
    low, high, p, seeds (seed i of the variant against seed i of the baseline, over the seeds both have).
    """
    loss_rows, diff_rows = [], []
    for row, models in replicates.items():
        for name, col in columns.items():
            e = estimate(col, [[m] for m in models], n_resamples, rng_for(seed, "heldout", row, name), level)
            loss_rows.append({"row": row, "column": name, **e.__dict__})
    for base in baselines:
        if base not in replicates:
            continue
        for row, models in replicates.items():
            if row == base or row in ("base", "reference") or (row in baselines and baselines.index(row) < baselines.index(base)):
                continue
            pairs = [[m, f"-{b}"] for m, b in zip(models, replicates[base])]
            for name, col in columns.items():
                e = estimate(col, pairs, n_resamples, rng_for(seed, "heldout-diff", row, base, name), level, paired=True)
                diff_rows.append({"variant": row, "baseline": base, "column": name, **e.__dict__})
    return pd.DataFrame(loss_rows), pd.DataFrame(diff_rows)


def _fmt(e: pd.Series, signed: bool = False, digits: int = 3) -> str:
    f = f"+.{digits}f" if signed else f".{digits}f"
    return f"{e['estimate']:{f}} [{e['low']:{f}}, {e['high']:{f}}]"


def losses_markdown(losses: pd.DataFrame, columns: Sequence[str]) -> str:
    """Rows x columns of 'mean [low, high]'; the last column says how many seeds a row averages."""
    lines = ["| model | " + " | ".join(columns) + " | seeds |", "|" + "---|" * (len(columns) + 2)]
    for row, part in losses.groupby("row", sort=False):
        cells = {r["column"]: _fmt(r) for _, r in part.iterrows()}
        lines.append(f"| {row} | " + " | ".join(cells.get(c, "—") for c in columns) + f" | {int(part['seeds'].iloc[0])} |")
    return "\n".join(lines) + "\n"


def differences_markdown(diffs: pd.DataFrame, columns: Sequence[str]) -> str:
    """Per baseline: variants x columns of 'difference [low, high] p', * where p < 0.05."""
    parts = []
    for base, part in diffs.groupby("baseline", sort=False):
        lines = [f"Against {base}:", "", "| variant | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
        for row, rows in part.groupby("variant", sort=False):
            cells = {}
            for _, r in rows.iterrows():
                star = "*" if r["p"] < 0.05 else ""
                cells[r["column"]] = f"{_fmt(r, signed=True)} p={r['p']:.3f}{star}"
            lines.append(f"| {row} | " + " | ".join(cells.get(c, "—") for c in columns) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def write_heldout_tables(
    shards: Mapping[str, Sequence[str]],
    losses: Mapping[str, Mapping[str, Sequence[str]]],
    replicates: Mapping[str, Sequence[str]],
    baselines: Sequence[str],
    eos_id: int,
    n_resamples: int,
    seed: int,
    run: str,
    out: Mapping[str, Path | str],
    level: float = LEVEL,
    note: str = "",
) -> None:
    """Write ``md`` (losses, then paired differences), ``losses_csv`` and ``differences_csv``; ``note``: a
    sentence the caption adds (e.g. whether the intervals cover the clustering's variance)."""
    from rhocluster.data.atomic import save_text

    columns = load_columns(shards, losses, eos_id)
    if not columns:
        raise ValueError("no held-out tokens to score: set data.synthetic.heldout_*_docs or data.*.heldout_*")
    loss_df, diff_df = heldout_tables(columns, replicates, baselines, n_resamples, seed, level)
    names = list(columns)
    n_docs = ", ".join(f"{name} {col.count.size} documents / {int(col.count.sum())} tokens" for name, col in columns.items())
    pct = round(100 * level)
    labelled = any(name not in (WEB_ALL, PROBLEMS) for name in names)
    web = "per ground-truth label of held-out web documents" if labelled else (
        "on held-out web documents (all tokens: no labels in this corpus)"
    )
    md = (
        f"Held-out loss (mean token loss, nats; lower is better) of every model on text it never trained on, run "
        f"`{run}`: {web}, and on held-out problem/solution documents "
        f"({n_docs}). A row with several seeds is the mean of its seeds; [{pct}% interval] from a bootstrap over "
        f"documents and seeds ({n_resamples} resamples). It measures what each selection teaches at this scale; "
        "it is not benchmark accuracy." + (f" {note}" if note else "") + "\n\n" + losses_markdown(loss_df, names)
    )
    if not diff_df.empty:
        md += (
            "\nPaired differences of held-out loss (variant minus baseline; negative: the variant predicts "
            "held-out text better), seed i against seed i of the baseline on the same resampled documents; "
            f"two-sided bootstrap p, * where p < 0.05 (not adjusted for the many cells).\n\n"
            + differences_markdown(diff_df, names)
        )
    save_text(out["md"], md)
    save_text(out["losses_csv"], loss_df.to_csv(index=False, float_format="%.5f", lineterminator="\n"))
    save_text(out["differences_csv"], diff_df.to_csv(index=False, float_format="%.5f", lineterminator="\n"))
