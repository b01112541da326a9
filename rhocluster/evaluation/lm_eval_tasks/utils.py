"""Dataset loading and scoring hooks for the rho1_* lm-eval tasks.

Where a task's rows come from, first match wins:

1. ``data_files`` (a path, or ``{"test": path}``) from the task's ``dataset_kwargs`` or
   lm-eval ``--metadata``: a normalised jsonl written by
   ``rhocluster.evaluation.benchmarks.normalize_benchmark``;
2. ``$RHO1_EVAL_DATA_DIR/<benchmark>.jsonl``: a folder of such files;
3. ``$RHO1_HARNESS_DIR``: a math-evaluation-harness checkout (``data/``, ``prompts/cot/``),
   normalised on the fly.

``$RHO1_GRADE_TIMEOUT_S`` sets the time limit of each symbolic comparison (default 3 s).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets

from rhocluster.evaluation.answers import is_empty_answer
from rhocluster.evaluation.benchmarks import check_benchmark, few_shot_prefix, load_harness_items, question_template
from rhocluster.evaluation.grading import configured_timeout_s, grade_verdict

DATA_DIR_ENV = "RHO1_EVAL_DATA_DIR"
HARNESS_DIR_ENV = "RHO1_HARNESS_DIR"
_ROW_KEYS = ("id", "prompt", "question", "gold")


def read_normalized(path: Path) -> list[dict[str, Any]]:
    """Rows of a normalised benchmark jsonl; ValueError naming file and line when malformed."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                row = json.loads(line)
                missing = [key for key in _ROW_KEYS if key not in row]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)}")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: malformed normalized row: {exc}") from exc
            rows.append({key: row[key] for key in _ROW_KEYS})
    return rows


def _rows(benchmark: str, data_files: str | dict[str, str] | None) -> list[dict[str, Any]]:
    if isinstance(data_files, dict):
        data_files = data_files.get("test")
    if data_files:
        return read_normalized(Path(data_files))
    if os.environ.get(DATA_DIR_ENV):
        return read_normalized(Path(os.environ[DATA_DIR_ENV]) / f"{benchmark}.jsonl")
    if os.environ.get(HARNESS_DIR_ENV):
        harness = Path(os.environ[HARNESS_DIR_ENV])
        prefix, template = few_shot_prefix(harness, benchmark), question_template(benchmark)
        return [
            {**item, "prompt": prefix + template.format(question=item["question"])}
            for item in load_harness_items(harness, benchmark)
        ]
    raise FileNotFoundError(
        f"rho1_{benchmark}: no data. Pass data_files (dataset_kwargs or --metadata), or set "
        f"{DATA_DIR_ENV} to a folder of normalized <benchmark>.jsonl files, or {HARNESS_DIR_ENV} "
        "to a math-evaluation-harness checkout."
    )


def load_rho1_dataset(benchmark: str, data_files: str | dict[str, str] | None = None, **_: Any) -> datasets.DatasetDict:
    """``custom_dataset`` hook: the benchmark's rows as a one-split DatasetDict.

    lm-eval passes the task metadata (version, model args, ...) as extra keywords; they
    are ignored. Ids are stored as strings so that int and str ids share one column type.
    """
    check_benchmark(benchmark)
    rows = [{**row, "id": str(row["id"]), "benchmark": benchmark} for row in _rows(benchmark, data_files)]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Grade one completion with the harness-compatible grader (time limit: ``$RHO1_GRADE_TIMEOUT_S``, default 3 s)."""
    verdict = grade_verdict(doc["benchmark"], results[0], doc["gold"], timeout_s=configured_timeout_s())
    return {
        "exact_match": float(verdict.correct),
        "timeout": float(verdict.timed_out),
        "empty_prediction": float(is_empty_answer(verdict.answer)),
    }
