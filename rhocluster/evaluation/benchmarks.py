"""Rho-1's nine math benchmarks in the layout of its evaluation harness.

Reproduces how ZubinGou/math-evaluation-harness @ 7fd4949 (the harness Rho-1 reports with)
turns a ``data/<name>/test.jsonl`` record into a question, a gold answer and a few-shot
chain-of-thought prompt, so that our lm-eval tasks see byte-identical prompts and golds.
Golds are normalised by :mod:`rhocluster.evaluation.normalize`, as predictions are.
"""

from __future__ import annotations

import ast
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from rhocluster.common.jsonl import write_jsonl
from rhocluster.evaluation.normalize import harness_extract, normalize_answer

# Table order of the Rho-1 paper (our report's column order).
BENCHMARKS: tuple[str, ...] = (
    "gsm8k",
    "svamp",
    "asdiv",
    "mawps",
    "tabmwp",
    "mathqa",
    "mmlu_stem",
    "sat_math",
    "math",
)

# Folder under ``data/`` of each benchmark; MATH is the 500-problem OpenAI split.
HARNESS_DATA_DIR: dict[str, str] = {b: b for b in BENCHMARKS} | {"math": "math_oai"}

# Prompt file (prompts/cot/<name>.md) of each benchmark. The harness runs MATH as
# ``minerva_math`` (4-shot Minerva prompt) and maps sat_math onto the MMLU-STEM prompt.
PROMPT_FILE: dict[str, str] = {
    "gsm8k": "gsm8k",
    "svamp": "gsm8k",
    "asdiv": "gsm8k",
    "mawps": "gsm8k",
    "tabmwp": "gsm8k",
    "mathqa": "mathqa",
    "mmlu_stem": "mmlu_stem",
    "sat_math": "mmlu_stem",
    "math": "minerva_math",
}

QUESTION_TEMPLATE = "Question: {question}\nAnswer:"
PROBLEM_TEMPLATE = "Problem:\n{question}\nSolution:"
# Benchmarks whose question is wrapped as "Problem:/Solution:" (utils.construct_prompt).
PROBLEM_STYLE: frozenset[str] = frozenset({"math", "mathqa", "mmlu_stem", "sat_math"})
# The harness reads a prompt file with ``.strip()`` and appends three newlines.
PROMPT_SEPARATOR = "\n\n\n"

# Stop words of the harness' "cot" prompt type; identical for every benchmark.
STOP_STRINGS: list[str] = ["</s>", "\n\nQuestion:", "\n\nProblem:"]

MULTIPLE_CHOICE: frozenset[str] = frozenset({"mathqa", "mmlu_stem", "sat_math"})

# How many items of each test file the harness evaluates (the shipped mathqa file already
# holds exactly the 1000 items it samples; the cap guards against a full MathQA file).
ITEM_CAP: dict[str, int] = {"mathqa": 1000}
# Items per benchmark in the harness' data at commit 7fd4949 (after ITEM_CAP): what Rho-1's accuracies
# are computed over. A fetched file with another count is truncated or not the pinned data.
HARNESS_ITEMS: dict[str, int] = {
    "gsm8k": 1319,
    "svamp": 1000,
    "asdiv": 2215,
    "mawps": 2065,
    "tabmwp": 1000,
    "mathqa": 1000,
    "mmlu_stem": 3018,
    "sat_math": 32,
    "math": 500,
}

_CHOICE_LEAD = "What of the following is the right choice? Explain your answer."


def check_benchmark(benchmark: str) -> str:
    """Return ``benchmark`` or raise ValueError listing the valid names."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; valid names: {', '.join(BENCHMARKS)}")
    return benchmark


def question_template(benchmark: str) -> str:
    """The ``str.format`` template that wraps a question after the few-shot exemplars."""
    return PROBLEM_TEMPLATE if check_benchmark(benchmark) in PROBLEM_STYLE else QUESTION_TEMPLATE


# --------------------------------------------------------------------------------------
# Harness records -> question and gold
# --------------------------------------------------------------------------------------


def _choices_mmlu(record: dict[str, Any]) -> str:
    options = record["choices"]
    if len(options) != 4:
        raise ValueError(f"mmlu_stem item needs 4 choices, got {len(options)}")
    labelled = [f"({label}) {str(option).strip()}" for label, option in zip("ABCD", options)]
    return f"{record['question'].strip()}\n{_CHOICE_LEAD}\n{', '.join(labelled)}"


def _choices_sat(record: dict[str, Any]) -> str:
    options = record["options"].strip()
    if not options.startswith("A"):
        raise ValueError(f"sat_math options must start with 'A': {options[:30]!r}")
    options = "(" + options
    for letter in "BCD":
        options = options.replace(f" {letter}) ", f" ({letter}) ")
    return f"{record['question'].strip()}\n{_CHOICE_LEAD}\n{options.strip()}"


def _choices_mathqa(record: dict[str, Any]) -> str:
    problem = record["problem"]
    problem = problem[:1].upper() + problem[1:]
    options = record["options"].strip()
    if options.startswith("["):
        options = ", ".join(ast.literal_eval(options))
    if not options.startswith("a"):
        raise ValueError(f"mathqa options must start with 'a': {options[:30]!r}")
    for letter in "abcde":
        if f"{letter} ) " in options:
            # a doubled label ("a ) a ) 5") occurs in the raw data; collapse it first
            options = options.replace(f"{letter} ) {letter} ) ", f"{letter} ) ")
            options = options.replace(f"{letter} ) ", f"({letter.upper()}) ")
    options = options.replace(" , ", ", ")
    return f"{problem.strip()}\n{_CHOICE_LEAD}\n{options.strip()}"


def _question_tabmwp(record: dict[str, Any]) -> str:
    title = record.get("table_title")
    title_part = f'regarding "{title}" ' if title else ""
    question = f"Read the following table {title_part}and answer a question:\n{record['table']}\n{record['question']}"
    if record.get("choices"):
        # the harness formats the Python list itself, e.g. "['yes', 'no']"
        question += f" Please select from the following options: {record['choices']}"
    return question


def _raw_question(benchmark: str, record: dict[str, Any]) -> str:
    if benchmark == "asdiv":
        return f"{record['body'].strip()} {record['question'].strip()}"
    if benchmark == "svamp":
        body = record["Body"].strip()
        if not body.endswith("."):
            body += "."
        return f"{body} {record['Question'].strip()}"
    if benchmark == "tabmwp":
        return _question_tabmwp(record)
    if benchmark == "mmlu_stem":
        return _choices_mmlu(record)
    if benchmark == "sat_math":
        return _choices_sat(record)
    if benchmark == "mathqa":
        return _choices_mathqa(record)
    for key in ("question", "problem", "Question", "input"):
        if key in record:
            return record[key]
    raise KeyError("question")


def _tabmwp_number(answer: str) -> float:
    # numeric TabMWP golds come as "1,000", "3/4" or "25%"; the harness makes them floats
    if "/" in answer:
        num, den = answer.split("/")[:2]
        return int(num) / int(den)
    if "," in answer:
        return float(answer.replace(",", ""))
    if "%" in answer:
        return float(answer.split("%")[0]) / 100
    return float(answer)


def parse_gold(benchmark: str, record: dict[str, Any]) -> str:
    """Gold answer of a harness record, normalised exactly as the harness scores it."""
    check_benchmark(benchmark)
    if benchmark == "math":
        # boxed answer of the reference solution; the harness normalises it once more at
        # parse time and once more when it re-parses golds in evaluate()
        gold: Any = harness_extract(record["solution"])
        return normalize_answer(normalize_answer(gold))
    if benchmark == "gsm8k":
        gold = record["answer"].split("####")[1]
    elif benchmark == "svamp":
        gold = record["Answer"]
    elif benchmark == "asdiv":
        gold = re.sub(r"\(.*?\)", "", record["answer"])  # drop the unit in parentheses
    elif benchmark == "mawps":
        gold = record["target"]
    elif benchmark == "tabmwp":
        gold = record["answer"]
        if record.get("ans_type") in ("integer_number", "decimal_number"):
            gold = _tabmwp_number(gold)
    elif benchmark == "mathqa":
        gold = record["correct"].upper()
        if gold not in ("A", "B", "C", "D", "E"):
            raise ValueError(f"mathqa answer must be a-e, got {record['correct']!r}")
    elif benchmark == "mmlu_stem":
        gold = "ABCD"[record["answer"]]
    else:  # sat_math
        gold = record["Answer"]
    return normalize_answer(normalize_answer(gold))


def parse_question(benchmark: str, record: dict[str, Any], gold: str | None = None) -> str:
    """Question text of a harness record, as the harness puts it into the prompt."""
    question = _raw_question(check_benchmark(benchmark), record)
    if not question:
        raise ValueError("empty question")
    gold_lower = (parse_gold(benchmark, record) if gold is None else gold).lower()
    # the harness flags boolean questions by their gold answer
    if gold_lower in ("true", "false"):
        question += " (True or False)"
    if gold_lower in ("yes", "no"):
        question += " (Yes or No)"
    return question.strip()


def load_harness_items(harness_dir: Path, benchmark: str) -> list[dict[str, Any]]:
    """Read ``data/<dir>/test.jsonl`` of a harness-layout directory.

    Returns ``[{"id", "question", "gold"}]`` in file order, with the question built and the
    gold parsed as the harness does. ``id`` is the record's ``idx`` or, like the harness,
    the line's position when records carry none. Raises ValueError naming the file and
    line for a malformed record and FileNotFoundError for a missing file.
    """
    path = Path(harness_dir) / "data" / HARNESS_DATA_DIR[check_benchmark(benchmark)] / "test.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{benchmark}: no test file at {path}")
    items: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("a record must be a JSON object")
                gold = parse_gold(benchmark, record)
                question = parse_question(benchmark, record, gold)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError, SyntaxError) as exc:
                detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise ValueError(f"{path}:{lineno}: malformed {benchmark} record: {detail}") from exc
            item_id = record.get("idx", lineno - 1)
            items.append({"id": item_id, "question": question, "gold": gold})
    return items


@lru_cache(maxsize=32)
def _read_exemplars(path: Path, mtime_ns: int) -> str:
    del mtime_ns  # part of the cache key only: an edited prompt file is re-read
    return path.read_text(encoding="utf-8").strip()


def few_shot_prefix(harness_dir: Path, benchmark: str) -> str:
    """Exemplar block (prompt file, stripped) plus separator that precedes every question."""
    path = Path(harness_dir) / "prompts" / "cot" / f"{PROMPT_FILE[check_benchmark(benchmark)]}.md"
    if not path.is_file():
        raise FileNotFoundError(f"{benchmark}: no prompt file at {path}")
    return _read_exemplars(path, path.stat().st_mtime_ns) + PROMPT_SEPARATOR


def build_prompt(harness_dir: Path, benchmark: str, question: str) -> str:
    """Few-shot CoT prompt exactly as the harness builds it for ``question``."""
    return few_shot_prefix(harness_dir, benchmark) + question_template(benchmark).format(question=question)


def normalize_benchmark(
    harness_dir: Path, benchmark: str, out_jsonl: Path, limit: int | None = None, check_count: bool = False
) -> int:
    """Write one benchmark as jsonl rows ``{"id", "prompt", "question", "gold"}``; return the count.

    Items beyond the harness' own cap (mathqa: 1000) and beyond ``limit`` are dropped. With
    ``check_count`` (the harness' real data) the items must number :data:`HARNESS_ITEMS`, else a
    ValueError names the file and both counts. The file is written atomically, so a failed run never
    leaves a partial benchmark.
    """
    items = load_harness_items(harness_dir, benchmark)
    cap = ITEM_CAP.get(benchmark)
    if cap is not None:
        items = items[:cap]
    if check_count and len(items) != HARNESS_ITEMS[benchmark]:
        path = Path(harness_dir) / "data" / HARNESS_DATA_DIR[benchmark] / "test.jsonl"
        raise ValueError(
            f"{path}: {len(items)} {benchmark} items, expected {HARNESS_ITEMS[benchmark]} (the harness' data "
            "at commit 7fd4949); the file is truncated or not the pinned one"
        )
    if limit is not None:
        items = items[:limit]
    prefix = few_shot_prefix(harness_dir, benchmark)
    template = question_template(benchmark)
    write_jsonl(
        (
            {"id": item["id"], "prompt": prefix + template.format(question=item["question"]),
             "question": item["question"], "gold": item["gold"]}
            for item in items
        ),
        out_jsonl,
    )
    return len(items)
