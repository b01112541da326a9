"""Results tables: accuracy per model and benchmark, and kept fraction per ground-truth label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from rhocluster.reporting.published import PUBLISHED

# Column order of the seed proposal (numbers.md): GSM8K, SVAMP, ASDiv, MAWPS, TAB, MQA, MMLU STEM, SAT, MATH.
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
MODEL_LABELS: dict[str, str] = {
    "base": "base",
    "reference": "reference (HQ fine-tune)",
    "ct": "CT (all tokens)",
    "rho1": "Rho-1 SLM (top-60% excess loss, dynamic)",
    "cluster": "cluster (balanced hierarchical sampling)",
    "cluster_excess": "cluster_excess (balanced quota, excess loss in leaf)",
    "random": "random (same budget)",
}


def load_accuracies(eval_files: Mapping[tuple[str, str], Path]) -> pd.DataFrame:
    """``{(model, benchmark): path}`` of evaluation JSONs -> DataFrame of accuracy (%) [model x benchmark]."""
    rows: dict[str, dict[str, float]] = {}
    for (model, bench), path in eval_files.items():
        data = json.loads(Path(path).read_text())
        if "accuracy" not in data:
            raise ValueError(f"evaluation file {path} has no 'accuracy'")
        rows.setdefault(model, {})[bench] = float(data["accuracy"])
    return pd.DataFrame.from_dict(rows, orient="index")


def accuracy_table(acc: pd.DataFrame, models: Sequence[str], benchmarks: Sequence[str]) -> pd.DataFrame:
    """Rows in ``models`` order, columns in the seed's order (only ``benchmarks``), plus the plain average."""
    cols = [b for b in COLUMNS if b in benchmarks]
    table = acc.reindex(index=list(models), columns=cols)
    table["avg"] = table[cols].mean(axis=1)
    table.index = [MODEL_LABELS.get(m, m) for m in table.index]
    return table.rename(columns=COLUMNS)


def published_table(benchmarks: Sequence[str]) -> pd.DataFrame:
    """The published rows (numbers.md), same columns; avg over the shown benchmarks."""
    cols = [b for b in COLUMNS if b in benchmarks]
    table = pd.DataFrame.from_dict(PUBLISHED, orient="index").reindex(columns=cols)
    table["avg"] = table[cols].mean(axis=1)
    return table.rename(columns=COLUMNS)


def label_table(summaries: Mapping[str, Path]) -> pd.DataFrame:
    """``{variant: train summary.json}`` -> kept fraction (%) of each ground-truth label, plus overall."""
    rows = {}
    for variant, path in summaries.items():
        data = json.loads(Path(path).read_text())
        by_label = data.get("kept_fraction_by_label")
        if by_label is None:
            continue
        row = {k: (None if v is None else 100.0 * v) for k, v in by_label.items()}
        row["all"] = 100.0 * data["kept_fraction"]
        rows[MODEL_LABELS.get(variant, variant)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def to_markdown(table: pd.DataFrame, first_col: str, digits: int = 1) -> str:
    """GitHub Markdown table (no tabulate dependency); missing values print as an em dash."""
    header = [first_col, *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = ["—" if pd.isna(v) else f"{v:.{digits}f}" for v in row.tolist()]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_tables(
    evals: Mapping[tuple[str, str], Path],
    summaries: Mapping[str, Path],
    models: Sequence[str],
    benchmarks: Sequence[str],
    run: str,
    out: Mapping[str, str],
) -> None:
    """Write ``results_md/results_csv`` (ours, then the published rows) and ``labels_md/labels_csv``."""
    from rhocluster.data.atomic import save_text

    ours = accuracy_table(load_accuracies(evals), models, benchmarks)
    published = published_table(benchmarks)
    md = (
        f"Few-shot CoT accuracy (%), run `{run}`, computed by the workflow:\n\n"
        + to_markdown(ours, "model")
        + "\nPublished (TinyLlama-1.1B scale, for the real config; from the Rho-1 paper and the seed proposal):\n\n"
        + to_markdown(published, "published model")
    )
    save_text(out["results_md"], md)
    both = pd.concat([ours.assign(source=f"ours ({run})"), published.assign(source="published")])
    save_text(out["results_csv"], both.to_csv(index_label="model", float_format="%.4f"))
    labels = label_table(summaries)
    if labels.empty:
        labels_md = "No ground-truth token labels in this corpus.\n"
    else:
        labels_md = (
            "Kept fraction (%) of the training tokens of each ground-truth label, per variant "
            "(counted by the trainer over all tokens it saw):\n\n" + to_markdown(labels, "variant")
        )
    save_text(out["labels_md"], labels_md)
    save_text(out["labels_csv"], labels.to_csv(index_label="variant", float_format="%.4f"))
