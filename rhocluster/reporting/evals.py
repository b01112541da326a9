"""Readers of the files the report consumes, with checks that fail naming the file.

Evaluation outputs (``rhocluster.evaluation.evaluate``): ``{benchmark}.json`` with at least
``accuracy`` (percent), ``n`` and ``correct``; ``{benchmark}.predictions.jsonl`` with one row per item
holding at least ``id`` and ``verdict`` (and ``prompt_sha256``, checked across models when present).
Training logs (``rhocluster.training.trainer``): JSONL with ``step``, ``loss``, ``kept_fraction`` per
logged step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

SUMMARY_KEYS = ("accuracy", "n", "correct")
PREDICTION_KEYS = ("id", "verdict")
TRAIN_LOG_KEYS = ("step", "loss", "kept_fraction")


@dataclass(frozen=True)
class Predictions:
    """Per-item verdicts of one model on one benchmark, sorted by item id.

    ids: item ids as canonical JSON strings; verdict: bool [n]; prompt_sha256: hashes or None.
    """

    path: Path
    ids: tuple[str, ...]
    verdict: np.ndarray
    prompt_sha256: tuple[str | None, ...]


def read_json(path: Path | str) -> Any:
    """Parsed JSON of ``path``; fails naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read JSON ({err})") from err


def load_eval_summary(path: Path | str) -> dict[str, Any]:
    """An evaluation summary JSON; fails naming ``path`` if a key is missing or the counts disagree."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    missing = [k for k in SUMMARY_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: evaluation summary lacks key(s) {', '.join(missing)}")
    n, correct, acc = data["n"], data["correct"], data["accuracy"]
    if not (isinstance(n, int) and n > 0 and isinstance(correct, int) and 0 <= correct <= n):
        raise ValueError(f"{path}: need integers 0 <= correct <= n and n > 0, got correct={correct!r} n={n!r}")
    if not isinstance(acc, (int, float)) or not math.isclose(float(acc), 100.0 * correct / n, abs_tol=1e-6):
        raise ValueError(f"{path}: accuracy {acc!r} is not 100 * correct / n = {100.0 * correct / n:.6f}")
    return data


def load_predictions(path: Path | str) -> Predictions:
    """A predictions JSONL; fails naming ``path`` (and the line) on a missing key, bad verdict or duplicate id."""
    path = Path(path)
    rows: dict[str, tuple[bool, str | None]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ValueError(f"{path}: cannot read predictions ({err})") from err
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({err})") from err
        missing = [k for k in PREDICTION_KEYS if k not in row]
        if missing:
            raise ValueError(f"{path}:{lineno}: prediction lacks key(s) {', '.join(missing)}")
        if not isinstance(row["verdict"], bool):
            raise ValueError(f"{path}:{lineno}: verdict must be true/false, got {row['verdict']!r}")
        key = json.dumps(row["id"], sort_keys=True)
        if key in rows:
            raise ValueError(f"{path}:{lineno}: duplicate id {key}")
        rows[key] = (row["verdict"], row.get("prompt_sha256"))
    if not rows:
        raise ValueError(f"{path}: no predictions")
    ids = tuple(sorted(rows))
    return Predictions(
        path=path,
        ids=ids,
        verdict=np.array([rows[i][0] for i in ids], dtype=bool),
        prompt_sha256=tuple(rows[i][1] for i in ids),
    )


def load_evaluation(summary_path: Path | str, predictions_path: Path | str) -> tuple[dict[str, Any], Predictions]:
    """Summary and predictions of one (model, benchmark), checked against each other."""
    summary = load_eval_summary(summary_path)
    preds = load_predictions(predictions_path)
    n, correct = len(preds.ids), int(preds.verdict.sum())
    if (n, correct) != (summary["n"], summary["correct"]):
        raise ValueError(
            f"{predictions_path}: {correct}/{n} correct, but {summary_path} says "
            f"{summary['correct']}/{summary['n']}"
        )
    return summary, preds


def check_same_items(a: Predictions, b: Predictions) -> None:
    """Fail unless ``a`` and ``b`` hold the same item ids with the same prompts (where hashes are given)."""
    if a.ids != b.ids:
        only_a, only_b = sorted(set(a.ids) - set(b.ids)), sorted(set(b.ids) - set(a.ids))
        raise ValueError(
            f"{a.path} and {b.path} hold different items (only in the first: {only_a[:5]}, "
            f"only in the second: {only_b[:5]}); paired comparison needs the same items"
        )
    for i, ha, hb in zip(a.ids, a.prompt_sha256, b.prompt_sha256):
        if ha is not None and hb is not None and ha != hb:
            raise ValueError(f"{a.path} and {b.path}: item {i} was asked with different prompts")


def load_train_log(path: Path | str, keys: Sequence[str] = TRAIN_LOG_KEYS) -> pd.DataFrame:
    """A trainer log (JSONL, one record per logged step) -> DataFrame sorted by step; fails naming the file."""
    path = Path(path)
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ValueError(f"{path}: cannot read training log ({err})") from err
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({err})") from err
        missing = [k for k in keys if k not in record]
        if missing:
            raise ValueError(f"{path}:{lineno}: log record lacks key(s) {', '.join(missing)}")
        records.append(record)
    if not records:
        raise ValueError(f"{path}: empty training log")
    # a resumed run appends; keep the last record of a step
    frame = pd.DataFrame.from_records(records).drop_duplicates("step", keep="last")
    return frame.sort_values("step", kind="stable").reset_index(drop=True)
