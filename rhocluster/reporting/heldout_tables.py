"""Held-out loss: every model's loss on text never trained on, per ground-truth label, in two metrics,
with bootstrap intervals over documents (and over training seeds where a variant has several), and
paired differences over the pairs of rows that differ in one factor (``compare_to`` in the variant
table).

The held-out sets are tokenized shards like the training ones (``heldout_web``: the web corpus' kind of
text, labelled per token in the generated corpus; ``heldout_hq``: problem/solution text like the
reference mixture). A column is a set of target tokens: one per label of the web set (all its tokens
when it carries no labels) and one for the problem/solution set. Documents are the resampling unit
(tokens of a document are not independent); they are recovered from the EOS that ends each one (windows
are consecutive cuts of the document stream).

Two statistics per column (``METRICS``):

- mean token loss (``token``): sum of losses / number of tokens, every token weighted once, so a token
  type weighs by its frequency;
- type-balanced mean loss (``type``): the mean over token types (the target token's id) of each type's
  mean loss, every type with at least ``min_count`` occurrences among the column's tokens (default 1:
  every type that occurs). It does not reward a selection for fitting the frequent types, which
  balanced sampling deliberately flattens. It is the mean of the column's tokens each weighted by the
  inverse of its type's count in the column, and a bootstrap resample keeps those weights fixed (a
  ratio estimator, as the mean token loss is with weight 1): re-counting types inside each resample
  would let the set of types change with the resample and bias the percentile interval away from the
  estimate.

A variant trained with several seeds is the mean of its seeds' statistics; its interval
(:func:`rhocluster.reporting.stats.seed_interval`) adds the seed-to-seed spread and the finite test set
(the variance of the seed mean over document resamples) under Student's t, so a rerun that draws every
seed anew (other float kernels) lands in it as often as the level says. A row of one model (base,
reference) has a percentile bootstrap interval over documents. Each seed's own statistic (with an
interval over documents alone) is listed too, so the spread between seeds can be read directly. Within a
column every model is scored on the same document resamples, so a paired difference compares seed i of
a variant with seed i of its counterpart (same data order) on the same resampled documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rhocluster.corpus.labels import LABELS
from rhocluster.data.shards import Shard, load_aligned
from rhocluster.reporting.stats import LEVEL, bootstrap_p_value, percentile_interval, rng_for, seed_interval
from rhocluster.workflow.variants import Pair

PROBLEMS = "problems"  # the column of the held-out problem/solution set
WEB_ALL = "web (all)"
TOKEN, TYPE = "token", "type"
METRICS = {TOKEN: "mean token loss", TYPE: "type-balanced mean loss"}
TYPE_MIN_COUNT = 1  # a type counts in the type-balanced mean where it occurs at least this often
DIFFERENCE_COLUMNS = ["variant", "counterpart", "factor", "column", "metric", "estimate", "low", "high", "p", "seeds"]
SEED_COLUMNS = ["row", "model", "column", "metric", "estimate", "low", "high"]
_MAX_CELLS = 1 << 22  # bound on one chunk of bootstrap draws (draws x documents): 32 MB of float64 weights


@dataclass
class HeldoutColumn:
    """One column's target tokens summed per (document, token type) cell: ``doc`` int64 [n_cells] the
    document (0..n_docs-1, every one with tokens), ``token`` int64 [n_cells] the target token id,
    ``count`` int64 [n_cells] its tokens, ``loss[m]`` float64 [n_cells] their summed losses under model m."""

    doc: np.ndarray
    token: np.ndarray
    count: np.ndarray
    loss: dict[str, np.ndarray]

    @property
    def n_docs(self) -> int:
        return int(self.doc.max()) + 1 if self.doc.size else 0

    @property
    def n_tokens(self) -> int:
        return int(self.count.sum())

    @cached_property
    def doc_count(self) -> np.ndarray:
        """int64 [n_docs]: tokens per document."""
        return np.bincount(self.doc, weights=self.count, minlength=self.n_docs).astype(np.int64)

    def doc_loss(self, model: str) -> np.ndarray:
        """float64 [n_docs]: summed losses per document."""
        return np.bincount(self.doc, weights=self.loss[model], minlength=self.n_docs)

    @cached_property
    def _types(self) -> tuple[np.ndarray, np.ndarray]:
        """(type ids int64 [n_types], type index int64 [n_cells] of every cell)."""
        return np.unique(self.token, return_inverse=True)

    def type_count(self) -> np.ndarray:
        """int64 [n_types]: tokens per type, types in id order."""
        return np.bincount(self._types[1], weights=self.count).astype(np.int64)

    def n_types(self, min_count: int = TYPE_MIN_COUNT) -> int:
        return int((self.type_count() >= min_count).sum())

    def cell_weight(self, metric: str, min_count: int = TYPE_MIN_COUNT) -> np.ndarray:
        """float64 [n_cells]: every token's weight in ``metric``: 1 (mean token loss), or 1 / its type's
        count in the column (type-balanced; 0 for types under ``min_count``)."""
        if metric == TOKEN:
            return np.ones(self.doc.size)
        counts = self.type_count()
        per_type = np.divide(1.0, counts, out=np.zeros(counts.size), where=counts >= min_count)
        return per_type[self._types[1]]

    def mean(self, model: str, metric: str = TOKEN, min_count: int = TYPE_MIN_COUNT) -> float:
        """The column's statistic for ``model`` on all its documents: mean token loss or type-balanced
        (the weighted mean of its tokens, :meth:`cell_weight`)."""
        weight = self.cell_weight(metric, min_count)
        return float((weight * self.loss[model]).sum() / (weight * self.count).sum())

    def draws(
        self, models: Sequence[str], n_resamples: int, rng: np.random.Generator, min_count: int = TYPE_MIN_COUNT
    ) -> dict[str, np.ndarray]:
        """{metric: float64 [n_resamples, len(models)]}: every model's statistics on the same bootstrap
        resamples of the documents (multinomial counts ``w`` over documents): for each metric the ratio
        sum_d w_d A_d / sum_d w_d B_d of the documents' weighted loss and weighted token sums, the tokens
        weighted as in :meth:`cell_weight` (fixed, from the whole column)."""
        n_docs = self.n_docs
        out = {}
        sums = {}
        for metric in METRICS:
            weight = self.cell_weight(metric, min_count)
            loss = np.stack(
                [np.bincount(self.doc, weights=weight * self.loss[m], minlength=n_docs) for m in models], axis=1
            )  # [D, M]
            sums[metric] = (loss, np.bincount(self.doc, weights=weight * self.count, minlength=n_docs))
            out[metric] = np.empty((n_resamples, len(models)))
        p = np.full(n_docs, 1.0 / n_docs)
        chunk = max(1, _MAX_CELLS // max(n_docs, 1))
        for start in range(0, n_resamples, chunk):
            b = min(chunk, n_resamples - start)
            w = rng.multinomial(n_docs, p, size=b).astype(np.float64)  # [b, D] documents drawn with replacement
            for metric, (loss, count) in sums.items():
                out[metric][start : start + b] = (w @ loss) / (w @ count)[:, None]
        return out


def document_ids(tokens: np.ndarray, eos_id: int) -> np.ndarray:
    """int64 [W, S]: document index of every token of a shard (a document ends with its EOS)."""
    flat = np.asarray(tokens).reshape(-1)
    ends = flat == eos_id
    doc = np.concatenate([[0], np.cumsum(ends)[:-1]])
    return doc.reshape(np.asarray(tokens).shape).astype(np.int64)


def _column(pieces: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]], models: Sequence[str]) -> HeldoutColumn:
    """Sum the (document, token, per-model losses) of a column's tokens into its cells."""
    doc = np.concatenate([d for d, _, _ in pieces])
    tok = np.concatenate([t for _, t, _ in pieces])
    bound = int(tok.max()) + 1 if tok.size else 1
    keys, inverse = np.unique(doc * bound + tok, return_inverse=True)
    cell_doc, cell_tok = np.divmod(keys, bound)
    _, cell_doc = np.unique(cell_doc, return_inverse=True)  # documents without tokens here drop out
    count = np.bincount(inverse, minlength=keys.size).astype(np.int64)
    loss = {
        m: np.bincount(inverse, weights=np.concatenate([x[m] for _, _, x in pieces]), minlength=keys.size) for m in models
    }
    return HeldoutColumn(doc=cell_doc.astype(np.int64), token=cell_tok.astype(np.int64), count=count, loss=loss)


def load_columns(
    shards: Mapping[str, Sequence[str]], losses: Mapping[str, Mapping[str, Sequence[str]]], eos_id: int
) -> dict[str, HeldoutColumn]:
    """Columns of the held-out sets: ``shards[split]`` lists shard prefixes of ``heldout_web`` and
    ``heldout_hq``; ``losses[model][split]`` the model's per-token loss files of those shards (float16
    [W, S], as ``score_shard`` writes them). A token's type is its id in the shard."""
    columns: dict[str, HeldoutColumn] = {}
    models = list(losses)
    for split, prefixes in shards.items():
        parts: dict[str, list] = {}
        offset = 0
        for i, prefix in enumerate(prefixes):
            shard = Shard(prefix)
            valid = shard.target_mask()
            windows = shard.windows()
            doc = document_ids(windows, eos_id)[valid] + offset
            tok = np.asarray(windows)[valid].astype(np.int64)
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
                parts.setdefault(name, []).append((doc[sel], tok[sel], {m: x[sel] for m, x in token_loss.items()}))
        for name, pieces in parts.items():
            if sum(d.size for d, _, _ in pieces):
                columns[name] = _column(pieces, models)
    order = [*(n for n in LABELS if n in columns), *(n for n in (WEB_ALL, PROBLEMS) if n in columns)]
    return {name: columns[name] for name in order}


def _over_seeds(per_seed: Sequence[float], draws: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """(estimate, low, high, p) of the mean over seeds of a statistic: ``per_seed`` its value per seed on
    all documents, ``draws`` float64 [B, n] its value per seed on each document resample. One seed: the
    percentile bootstrap over documents (and its p); several: :func:`seed_interval`."""
    if len(per_seed) == 1:
        return (float(per_seed[0]), *percentile_interval(draws[:, 0], level), bootstrap_p_value(draws[:, 0]))
    return seed_interval(per_seed, draws.mean(axis=1), level)


def heldout_tables(
    columns: Mapping[str, HeldoutColumn],
    replicates: Mapping[str, Sequence[str]],
    pairs: Sequence[Pair],
    n_resamples: int,
    seed: int,
    level: float = LEVEL,
    min_count: int = TYPE_MIN_COUNT,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(losses, differences, seeds) in long form, both metrics.

    ``replicates[row]`` lists the models of a row, one per training seed (base and reference: one).
    losses: row, column, metric, estimate, low, high, seeds. differences: one per pair (variant minus
    counterpart, seed i against seed i over the seeds both have), column and metric: variant,
    counterpart, factor, column, metric, estimate, low, high, p, seeds. seeds: every model of every row
    on its own (the statistics a row averages), its interval over documents only: row, model, column,
    metric, estimate, low, high.
    """
    for pair in pairs:
        for row in (pair.variant, pair.counterpart):
            if row not in replicates:
                raise ValueError(f"pair {pair.label!r}: no row {row!r} among {', '.join(replicates)}")
    models = list(dict.fromkeys(m for ms in replicates.values() for m in ms))
    index = {m: i for i, m in enumerate(models)}
    loss_rows: dict[tuple[str, str, str], dict] = {}
    diff_rows: dict[tuple[str, int, str], dict] = {}
    seed_rows: dict[tuple[str, str, str, str], dict] = {}
    for name, col in columns.items():
        # one set of document resamples per column, shared by every model: pairs stay paired
        draws = col.draws(models, n_resamples, rng_for(seed, "heldout-documents", name), min_count)
        for row, ms in replicates.items():
            for metric in METRICS:
                per_seed = [col.mean(m, metric, min_count) for m in ms]
                point, low, high, _ = _over_seeds(per_seed, draws[metric][:, [index[m] for m in ms]], level)
                loss_rows[metric, row, name] = {"row": row, "column": name, "metric": metric, "estimate": point,
                                                "low": low, "high": high, "seeds": len(ms)}  # fmt: skip
                for m in ms:
                    low, high = percentile_interval(draws[metric][:, index[m]], level)
                    seed_rows[metric, row, m, name] = {"row": row, "model": m, "column": name, "metric": metric,
                                                       "estimate": col.mean(m, metric, min_count),
                                                       "low": low, "high": high}  # fmt: skip
        for k, pair in enumerate(pairs):
            a, b = zip(*zip(replicates[pair.variant], replicates[pair.counterpart]))  # seed i with seed i
            for metric in METRICS:
                d = draws[metric][:, [index[m] for m in a]] - draws[metric][:, [index[m] for m in b]]
                per_seed = [col.mean(x, metric, min_count) - col.mean(y, metric, min_count) for x, y in zip(a, b)]
                point, low, high, p = _over_seeds(per_seed, d, level)
                diff_rows[metric, k, name] = {**pair.to_dict(), "column": name, "metric": metric, "estimate": point,
                                              "low": low, "high": high, "p": p, "seeds": len(a)}  # fmt: skip
    losses = pd.DataFrame([loss_rows[m, r, c] for m in METRICS for r in replicates for c in columns])
    diffs = [diff_rows[m, k, c] for m in METRICS for k in range(len(pairs)) for c in columns]
    seeds = [seed_rows[m, r, x, c] for m in METRICS for r, ms in replicates.items() for x in ms for c in columns]
    return losses, pd.DataFrame(diffs, columns=DIFFERENCE_COLUMNS), pd.DataFrame(seeds, columns=SEED_COLUMNS)


def _fmt(e: pd.Series, signed: bool = False, digits: int = 3) -> str:
    f = f"+.{digits}f" if signed else f".{digits}f"
    return f"{e['estimate']:{f}} [{e['low']:{f}}, {e['high']:{f}}]"


def losses_markdown(losses: pd.DataFrame, columns: Sequence[str], metric: str = TOKEN) -> str:
    """Rows x columns of 'mean [low, high]' of one metric; the last column says how many seeds a row averages."""
    lines = ["| model | " + " | ".join(columns) + " | seeds |", "|" + "---|" * (len(columns) + 2)]
    for row, part in losses[losses["metric"] == metric].groupby("row", sort=False):
        cells = {r["column"]: _fmt(r) for _, r in part.iterrows()}
        lines.append(f"| {row} | " + " | ".join(cells.get(c, "—") for c in columns) + f" | {int(part['seeds'].iloc[0])} |")
    return "\n".join(lines) + "\n"


def seeds_markdown(seeds: pd.DataFrame, columns: Sequence[str], metric: str = TOKEN) -> str:
    """One row per model of the rows trained with several seeds (a row's models in seed order), columns of
    'statistic [low, high]', the interval over documents for that model alone; '' when no row has
    several seeds."""
    part = seeds[seeds["metric"] == metric]
    n_models = part.groupby("row", sort=False)["model"].nunique()
    part = part[part["row"].isin(n_models.index[n_models > 1])]
    if part.empty:
        return ""
    lines = ["| model | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for model, rows in part.groupby("model", sort=False):
        cells = {r["column"]: _fmt(r) for _, r in rows.iterrows()}
        lines.append(f"| {model} | " + " | ".join(cells.get(c, "—") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def seeds_caption(run: str, n_resamples: int, level: float = LEVEL) -> str:
    """The caption of :func:`seeds_markdown`'s table."""
    return (
        f"Held-out mean token loss of every training seed (nats; lower is better), run `{run}`: each CPT model "
        "of the rows trained with several seeds on its own (`cluster` is the first seed of `cpt.seeds`, "
        "`cluster.s1` the second, ...), the statistics whose mean is the row's held-out loss in the README; "
        f"[{round(100 * level)}% interval] from a bootstrap over documents alone ({n_resamples} resamples), "
        "the same resampled documents for every model. The row's interval in the README adds these "
        "seeds' spread to the documents'. A seed's value is one draw of its training run: a rerun on other "
        "float kernels draws it anew, which its interval over documents does not cover."
    )


def _significant(r: pd.Series) -> bool:
    return bool(r["p"] < 0.05)


def pairs_markdown(diffs: pd.DataFrame, columns: Sequence[str], metric: str = TOKEN) -> str:
    """One row per pair, labelled '{factor}: {variant} − {counterpart}', of one metric: columns of
    'difference [low, high] p=', * where p < 0.05."""
    lines = ["| pair: the factor, then which difference | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    part = diffs[diffs["metric"] == metric]
    for (variant, counterpart, factor), rows in part.groupby(["variant", "counterpart", "factor"], sort=False):
        cells = {r["column"]: f"{_fmt(r, signed=True)} p={r['p']:.3f}{'*' if _significant(r) else ''}" for _, r in rows.iterrows()}
        label = Pair(variant, counterpart, factor).label
        lines.append(f"| {label} | " + " | ".join(cells.get(c, "—") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _join(names: Sequence[str], columns: Sequence[str]) -> str:
    if len(names) == len(columns):
        return "every column"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _verdict(rows: pd.DataFrame, columns: Sequence[str], metric: str) -> str:
    """'<metric> lower on ..., higher on ..., no significant difference on ...' (variant against counterpart)."""
    by_col = {r["column"]: r for _, r in rows[rows["metric"] == metric].iterrows()}
    cols = [c for c in columns if c in by_col]
    lower = [c for c in cols if _significant(by_col[c]) and by_col[c]["estimate"] < 0]
    higher = [c for c in cols if _significant(by_col[c]) and by_col[c]["estimate"] > 0]
    same = [c for c in cols if c not in lower and c not in higher]
    if not lower and not higher:
        return f"no significant difference in {METRICS[metric]} on any column"
    bits = [f"{word} on {_join(group, cols)}" for word, group in (("lower", lower), ("higher", higher)) if group]
    if same:
        bits.append(f"no significant difference on {_join(same, cols)}")
    return f"{METRICS[metric]} " + ", ".join(bits)


def pairs_prose(diffs: pd.DataFrame, columns: Sequence[str]) -> str:
    """One sentence per pair, read off the pair tables: where the variant's held-out loss is significantly
    lower or higher than its counterpart's (p < 0.05, unadjusted), in each metric, and where it is not."""
    lines = []
    for (variant, counterpart, factor), rows in diffs.groupby(["variant", "counterpart", "factor"], sort=False):
        verdicts = "; ".join(_verdict(rows, columns, metric) for metric in METRICS)
        lines.append(f"- *{factor}* ({variant} − {counterpart}): {verdicts}.")
    return "\n".join(lines) + "\n"


def write_heldout_tables(
    shards: Mapping[str, Sequence[str]],
    losses: Mapping[str, Mapping[str, Sequence[str]]],
    replicates: Mapping[str, Sequence[str]],
    pairs: Sequence[Pair],
    eos_id: int,
    n_resamples: int,
    seed: int,
    run: str,
    out: Mapping[str, Path | str],
    level: float = LEVEL,
    skipped: Sequence[Pair] = (),
    min_count: int = TYPE_MIN_COUNT,
    note: str = "",
    overlap: Mapping | None = None,
) -> None:
    """Write ``md`` (both metrics' loss tables, the pair tables and one sentence per pair; ``skipped``:
    declared pairs whose counterpart the run does not train, named there; ``note``: a sentence the
    caption adds, e.g. whether the intervals cover the clustering's variance; ``overlap``:
    :func:`rhocluster.corpus.overlap.measure_overlap`'s result, how much held-out text training saw),
    ``losses_csv`` and ``differences_csv``; where ``out`` names them, ``seeds_csv`` (every model's own
    statistics) and ``seeds_md`` (its mean token loss table with caption, empty without rows of several
    seeds)."""
    from rhocluster.corpus.overlap import overlap_sentence
    from rhocluster.common.atomic import save_text

    columns = load_columns(shards, losses, eos_id)
    if not columns:
        raise ValueError("no held-out tokens to score: set data.synthetic.heldout_*_docs or data.*.heldout_*")
    loss_df, diff_df, seed_df = heldout_tables(columns, replicates, pairs, n_resamples, seed, level, min_count)
    names = list(columns)
    sizes = ", ".join(
        f"{name} {col.n_docs} documents / {col.n_tokens} tokens / {col.n_types(min_count)} types" for name, col in columns.items()
    )
    pct = round(100 * level)
    at_least = "that occurs" if min_count == 1 else f"with at least {min_count} tokens in the column"
    labelled = any(name not in (WEB_ALL, PROBLEMS) for name in names)
    web = "per ground-truth label of held-out web documents" if labelled else (
        "on held-out web documents (all tokens: no labels in this corpus)"
    )
    md = (
        f"Held-out loss (nats; lower is better) of every model on text it never trained on, run `{run}`: "
        f"{web}, and on held-out problem/solution documents ({sizes}). "
        f"A row with several seeds is the mean of its seeds, [{pct}% interval] Student's t over the seeds with "
        f"the documents' variance added (bootstrap, {n_resamples} resamples); a row of one model: a bootstrap "
        "interval over documents. It measures what each selection teaches at this scale; it is not "
        "benchmark accuracy."
        + (f" {note}" if note else "")
        + (f" Held-out text seen in training: {overlap_sentence(overlap)}" if overlap else "")
        + "\n\n"
        "Mean token loss (every held-out token counts once):\n\n" + losses_markdown(loss_df, names, TOKEN) + "\n"
        f"Type-balanced mean loss (the mean over token types, a type being the target token's id, of each type's "
        f"mean loss; every type {at_least} counts once):\n\n" + losses_markdown(loss_df, names, TYPE) + "\n"
        "Mean token loss answers how well a model predicts held-out text as it occurs (frequent tokens weigh "
        "most); type-balanced loss answers how well it predicts each kind of token however rare, which is "
        "what balanced sampling's flattening of frequencies aims at.\n"
    )
    if pairs:
        md += (
            "\nPaired differences over the pairs of rows that differ in one factor (`compare_to` in the variant "
            "table), each labelled by that factor: variant minus counterpart (negative: the variant predicts "
            "held-out text better), seed i against seed i on the same resampled documents, interval and "
            "two-sided p as the rows' (t over the seeds' differences); * where p < 0.05 (not adjusted for the many "
            "cells).\n\n"
            "Mean token loss:\n\n" + pairs_markdown(diff_df, names, TOKEN) + "\n"
            + ("" if "seeds_md" in out else "Type-balanced mean loss:\n\n" + pairs_markdown(diff_df, names, TYPE) + "\n")
            + "What the pairs show (read off the mean token loss table above and the type-balanced one"
            + (" on the results page with the per-seed numbers" if "seeds_md" in out else " beside it")
            + "; lower: the first row of the pair has the lower held-out loss):\n\n"
            + pairs_prose(diff_df, names)
        )
    if skipped:
        md += "\nPairs declared but skipped, their counterpart not trained in this run: " + ", ".join(
            f"{p.variant} − {p.counterpart} ({p.factor})" for p in skipped
        ) + ".\n"
    save_text(out["md"], md)
    save_text(out["losses_csv"], loss_df.to_csv(index=False, float_format="%.5f", lineterminator="\n"))
    save_text(out["differences_csv"], diff_df.to_csv(index=False, float_format="%.5f", lineterminator="\n"))
    if "seeds_csv" in out:
        save_text(out["seeds_csv"], seed_df.to_csv(index=False, float_format="%.5f", lineterminator="\n"))
    if "seeds_md" in out:
        # the page beside the README: every seed's numbers, and the type-balanced pair table (the README's
        # block keeps the mean token loss pair table and both metrics' loss tables)
        table = seeds_markdown(seed_df, names, TOKEN)
        page = seeds_caption(run, n_resamples, level) + "\n\n" + table if table else ""
        if pairs:
            page += (
                ("\n" if page else "")
                + "Paired differences of the type-balanced mean loss over the one-factor pairs (as the mean token "
                "loss pair table of the README: variant minus counterpart, seed i against seed i on the same "
                "resampled documents, interval and two-sided p from t over the seeds' differences, * where p < 0.05):\n\n"
                + pairs_markdown(diff_df, names, TYPE)
            )
        save_text(out["seeds_md"], page)
