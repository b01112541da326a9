"""Rho-1's nine math benchmarks in the layout of its evaluation harness.

Reproduces how ZubinGou/math-evaluation-harness @ 7fd4949 (the harness Rho-1 reports with)
turns a ``data/<name>/test.jsonl`` record into a question, a gold answer and a few-shot
chain-of-thought prompt, so that our lm-eval tasks see byte-identical prompts and golds.
The answer normalisation shared by gold parsing and answer extraction lives here too
(:func:`normalize_answer`, the harness' ``strip_string``).
"""

from __future__ import annotations

import ast
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from rhocluster.data.atomic import atomic_path

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
# Answer normalisation (the harness' ``strip_string``)
# --------------------------------------------------------------------------------------

# Unit words the harness deletes from answers (mostly MathQA units), in its order. They are
# regex fragments, not literals ("q ." matches "q" + any char), exactly as the harness uses them.
_UNIT_WORDS: tuple[str, ...] = (
    "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile",
    "q .", "monkey", "prime", "ratio", "profit of rs", "rd", "o", "gm",
    "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab", "way", "west",
    "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h",
    "no change", "men", "soldier", "pie", "bc", "excess", "st",
    "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre", "rise",
    "a . m", "th", "π r 2", "sq", "mark", "l", "toy", "coin",
    "sq . m", "gallon", "° f", "profit", "minw", "yr", "women",
    "feet", "am", "pm", "hr", "cu cm", "square", "v â € ™", "are",
    "rupee", "rounds", "cubic", "cc", "mtr", "s", "ohm", "number",
    "kmph", "day", "hour", "minute", "min", "second", "man", "woman",
    "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare", "more",
    "sec", "unit", "cu . m", "cm 2", "rs .", "rs", "kg", "g", "month",
    "km", "m", "cm", "mm", "apple", "liter", "loss", "yard",
    "pure", "year", "increase", "decrease", "d", "less", "Surface",
    "litre", "pi sq m", "s .", "metre", "meter", "inch",
)
# The harness also strips the plural of every unit word, after all singulars.
_UNIT_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(r"(^|\W)" + word + r"($|\W)") for word in _UNIT_WORDS + tuple(w + "s" for w in _UNIT_WORDS)
)
# Matches wherever any single unit pattern would: lets clean strings skip the 500-pattern loop.
_ANY_UNIT = re.compile(r"(^|\W)(?:" + "|".join(_UNIT_WORDS + tuple(w + "s" for w in _UNIT_WORDS)) + r")($|\W)")
_TEXT_TAIL = re.compile(r"\\text{.*?}$")
_TEXT_ARG = re.compile(r"\\text\{(.*?)\}")
_MBOX = re.compile(r"\\mbox{.*?}")
_ARRAY_BEGIN = re.compile(r"\\begin\{array\}\{.*?\}")
_ARRAY_END = re.compile(r"\\end\{array\}")
_TRAILING_ZEROS_INNER = re.compile(r"(\d+)\.0*([^\d])")
_TRAILING_ZEROS_END = re.compile(r"(\d+)\.0*$")
_SQRT_BARE = re.compile(r"\\sqrt(\w+)")


def _words_to_number(text: str) -> str:
    """Turn number words ("five hundred") into digits, as the harness does with word2number."""
    from word2number import w2n  # lm-eval depends on it; imported lazily to keep import cheap

    try:
        return str(w2n.word_to_num(text))
    except Exception:  # noqa: BLE001 - word2number raises ValueError/IndexError/... on non-numbers
        return text


def _fix_fracs(text: str) -> str:
    r"""Brace bare ``\frac`` arguments: ``\frac12`` -> ``\frac{1}{2}``, ``\frac1{72}`` -> ``\frac{1}{72}``."""
    head, *tails = text.split("\\frac")
    out = head
    for tail in tails:
        out += "\\frac"
        if tail.startswith("{"):
            out += tail
            continue
        if len(tail) < 2:
            return text  # malformed: give up and keep the original, like the harness
        first, second, rest = tail[0], tail[1], tail[2:]
        if second != "{":
            out += "{" + first + "}{" + second + "}" + rest
        else:
            out += "{" + first + "}" + second + rest
    return out


def _fix_a_slash_b(text: str) -> str:
    r"""Rewrite a plain ``a/b`` of integers (or sqrt terms) as ``\frac{a}{b}``."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    num, den = parts
    try:
        num_v: Any = num if "sqrt" in num else int(num)
        den_v: Any = den if "sqrt" in den else int(den)
    except ValueError:
        return text
    if text != f"{num_v}/{den_v}":
        return text
    return "\\frac{" + str(num_v) + "}{" + str(den_v) + "}"


def normalize_answer(answer: Any) -> str:
    """Canonical string form of an answer, step for step the harness' ``strip_string``.

    Removes units, ``\\text{}``, dollars, percent signs, ``\\left/\\right``, trailing
    ``.0``, ``x=`` prefixes and spaces, and rewrites fractions. Quirks are kept on
    purpose (e.g. every "and" is deleted): golds and predictions go through the same
    function, and the published accuracies were computed with it.
    """
    s = str(answer).strip().replace("\n", "").rstrip(".")
    s = s.replace("\\!", "")
    s = _ARRAY_BEGIN.sub(r"\\begin{pmatrix}", s)
    s = _ARRAY_END.sub(r"\\end{pmatrix}", s)
    s = s.replace("bmatrix", "pmatrix")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\{", "{").replace("\\}", "}")

    # a trailing \text{...} is a unit, unless it is all there is
    cut = _TEXT_TAIL.sub("", s).strip()
    if cut and cut != s:
        s = cut
    for _ in range(2):
        if not _ANY_UNIT.search(s):
            break  # no pattern can change anything, in this pass or the next
        for pattern in _UNIT_PATTERNS:
            cut = pattern.sub(r"\1\2", s)
            if cut:
                s = cut

    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    s = _words_to_number(s)
    s = _TEXT_ARG.sub(r"\1", s)
    for prefix in ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"):
        s = s.replace(prefix, "")
    s = s.replace("\\emptyset", "{}")
    s = s.replace("(-\\infty,\\infty)", "\\mathbb{R}")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")

    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty")
    s = s.replace("and", "")
    s = s.replace("\\mathbf", "")
    s = _MBOX.sub("", s)
    if "j" in s and "i" not in s:  # imaginary unit written as j
        s = s.replace("j", "i")
    s = _TRAILING_ZEROS_INNER.sub(r"\1\2", s)
    s = _TRAILING_ZEROS_END.sub(r"\1", s)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5" -> "5"
        s = sides[1]
    s = _SQRT_BARE.sub(r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    return _fix_a_slash_b(s)


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
        from rhocluster.evaluation.answers import harness_extract

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
    with atomic_path(out_jsonl, ".jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for item in items:
                row = {
                    "id": item["id"],
                    "prompt": prefix + template.format(question=item["question"]),
                    "question": item["question"],
                    "gold": item["gold"],
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(items)
