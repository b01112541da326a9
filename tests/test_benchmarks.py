"""Benchmark loading, gold parsing and prompts on the harness' real data; tiny benchmarks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rhocluster.evaluation.answers import extract_answer
from rhocluster.evaluation.benchmarks import (
    BENCHMARKS,
    HARNESS_DATA_DIR,
    PROMPT_FILE,
    STOP_STRINGS,
    build_prompt,
    load_harness_items,
    normalize_benchmark,
)
from rhocluster.evaluation.grading import grade
from rhocluster.evaluation.normalize import normalize_answer
from rhocluster.evaluation.tiny import write_tiny_benchmarks

SHARED = Path(__file__).parents[2] / "shared"
HARNESS = SHARED / "benchmarks" / "math-evaluation-harness-7fd4949"
OUTPUTS = SHARED / "reference" / "rho1-outputs" / "rho-math-1b-v0.1"
needs_harness = pytest.mark.skipif(
    not HARNESS.is_dir(), reason=f"harness data not found at {HARNESS} (shared/ absent)"
)
needs_outputs = pytest.mark.skipif(
    not OUTPUTS.is_dir(), reason=f"Rho-1's released completions not found at {OUTPUTS} (shared/ absent)"
)

SHIPPED = [b for b in BENCHMARKS if b != "tabmwp"]  # TabMWP's test file is fetched by the workflow
EXPECTED_COUNTS = {
    "gsm8k": 1319, "svamp": 1000, "asdiv": 2215, "mawps": 2065, "mathqa": 1000,
    "mmlu_stem": 3018, "sat_math": 32, "math": 500,
}
# The harness' own gold is empty here: "\text{east}" loses "east" as a unit word. Kept for parity
# (the released Rho-1 outputs carry gt "" for this item too).
HARNESS_EMPTY_GOLDS = {("math", 97)}


def test_names_and_protocol_constants() -> None:
    assert BENCHMARKS == ("gsm8k", "svamp", "asdiv", "mawps", "tabmwp", "mathqa", "mmlu_stem", "sat_math", "math")
    assert HARNESS_DATA_DIR["math"] == "math_oai"
    assert PROMPT_FILE["math"] == "minerva_math" and PROMPT_FILE["sat_math"] == "mmlu_stem"
    assert STOP_STRINGS == ["</s>", "\n\nQuestion:", "\n\nProblem:"]


@needs_harness
@pytest.mark.parametrize("benchmark", SHIPPED)
def test_every_real_item_parses(benchmark: str) -> None:
    items = load_harness_items(HARNESS, benchmark)
    assert len(items) == EXPECTED_COUNTS[benchmark]
    assert len({item["id"] for item in items}) == len(items)
    exemplars = (HARNESS / "prompts" / "cot" / f"{PROMPT_FILE[benchmark]}.md").read_text(encoding="utf-8").strip()
    problem_style = benchmark in ("math", "mathqa", "mmlu_stem", "sat_math")
    for item in items:
        assert item["question"] and item["question"] == item["question"].strip()
        if (benchmark, item["id"]) not in HARNESS_EMPTY_GOLDS:
            assert item["gold"], (benchmark, item["id"])
        prompt = build_prompt(HARNESS, benchmark, item["question"])
        assert prompt.startswith(exemplars + "\n\n\n")
        if problem_style:
            assert prompt.endswith(f"\n\n\nProblem:\n{item['question']}\nSolution:")
        else:
            assert prompt.endswith(f"\n\n\nQuestion: {item['question']}\nAnswer:")
        if benchmark in ("mathqa", "mmlu_stem", "sat_math"):
            # (a few SAT items write "A. x B. y"; the harness then gives "(A. x B. y", kept as is)
            assert item["gold"] in "ABCDE" and "\n(A" in item["question"]
        # a completion stating the gold in the prompt's own answer style is graded correct
        if item["gold"] and benchmark in ("gsm8k", "svamp", "asdiv", "mawps"):
            assert grade(benchmark, f"So it is. The answer is {item['gold']}.", item["gold"])


def _raw_records(benchmark: str) -> list[dict]:
    path = HARNESS / "data" / HARNESS_DATA_DIR[benchmark] / "test.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _stated_raw_answer(benchmark: str, record: dict) -> tuple[str, str]:
    """(text of the record's question field, a completion stating the record's own answer field)."""
    if benchmark == "gsm8k":
        return record["question"], f"The answer is {record['answer'].split('####')[-1].strip()}."
    if benchmark == "svamp":
        return record["Question"], f"The answer is {record['Answer']}."
    if benchmark == "asdiv":
        return record["question"], f"The answer is {re.sub(r'[(].*?[)]', '', record['answer']).strip()}."
    if benchmark == "mawps":
        return record["input"], f"The answer is {record['target']}."
    if benchmark == "mathqa":
        return record["problem"][1:], f"The answer is ({record['correct']})."
    if benchmark == "mmlu_stem":
        return record["question"], f"The answer is ({'ABCD'[record['answer']]})."
    if benchmark == "sat_math":
        return record["question"], f"The answer is ({record['Answer']})."
    return record["problem"], f"So $\\boxed{{{record['answer']}}}$."  # MATH: its separate answer field


@needs_harness
@pytest.mark.parametrize("benchmark", SHIPPED)
def test_every_real_gold_agrees_with_its_record(benchmark: str) -> None:
    """On every real item: the question carries the record's text, and a completion stating the
    record's own answer field (not the parsed gold) is graded correct against the parsed gold."""
    items, records = load_harness_items(HARNESS, benchmark), _raw_records(benchmark)
    assert len(items) == len(records)
    wrong = []
    for item, record in zip(items, records):
        question_text, completion = _stated_raw_answer(benchmark, record)
        assert question_text.strip() in item["question"], (benchmark, item["id"])
        if not grade(benchmark, completion, item["gold"]):
            wrong.append((item["id"], item["gold"], completion))
    assert wrong == []


@needs_harness
@needs_outputs
@pytest.mark.parametrize("name", ["gsm8k", "math"])
def test_questions_and_golds_match_released_outputs(name: str) -> None:
    items = load_harness_items(HARNESS, name)
    rows = [json.loads(line) for line in open(OUTPUTS / f"{name}.jsonl", encoding="utf-8")]
    assert [item["question"] for item in items] == [row["question"] for row in rows]
    assert [item["gold"] for item in items] == [row["gt"] for row in rows]


@needs_harness
def test_question_formats() -> None:
    mathqa = load_harness_items(HARNESS, "mathqa")[0]
    assert mathqa["question"] == (
        "If log 8 x + log 8 1 / 6 = 1 / 3 , then the value of x is :\n"
        "What of the following is the right choice? Explain your answer.\n"
        "(A) 12, (B) 16, (C) 18, (D) 24, (E) 26"
    )
    assert mathqa["gold"] == "A"
    sat = load_harness_items(HARNESS, "sat_math")[0]
    assert sat["question"].endswith("\n(A) $f(-6)=0$ (B) $f(6)=-6$ (C) $f(-6)=6$ (D) $f(0)=-6$")
    mmlu = load_harness_items(HARNESS, "mmlu_stem")[0]
    assert mmlu["question"].endswith(", (D) increase the mortality rate") and mmlu["gold"] == "C"
    svamp = load_harness_items(HARNESS, "svamp")[0]
    assert svamp["question"].startswith("There are 87 oranges") and ". How big is each group" in svamp["question"]
    assert load_harness_items(HARNESS, "asdiv")[0]["gold"] == "9"  # "9 (apples)"
    assert load_harness_items(HARNESS, "mawps")[0]["gold"] == "43"  # 43.0
    gsm8k = load_harness_items(HARNESS, "gsm8k")[0]
    prompt = build_prompt(HARNESS, "gsm8k", gsm8k["question"])
    assert prompt.endswith("The answer is 8.\n\n\nQuestion: " + gsm8k["question"] + "\nAnswer:")


def test_gold_normalization() -> None:
    assert normalize_answer(" 18") == "18"
    assert normalize_answer(43.0) == "43"
    assert normalize_answer("\\left( 3, \\frac{\\pi}{2} \\right)") == "(3,\\frac{\\pi}{2})"
    assert normalize_answer("\\dfrac12") == "\\frac{1}{2}"
    assert normalize_answer("5\\text{ cm}") == "5"
    assert normalize_answer("x = 3") == "3"
    assert normalize_answer("50\\%") == "50"


# One hand-written record per benchmark in the harness' format, with the question and gold the
# harness derives from it (runs without shared/).
FIXTURES: dict[str, tuple[dict, str, str]] = {
    "gsm8k": (
        {"question": "Tom has 1,200 apples and buys 50 more. How many apples does he have?",
         "answer": "He has 1,200 + 50 = <<1200+50=1250>>1250 apples.\n#### 1,250", "idx": 7},
        "Tom has 1,200 apples and buys 50 more. How many apples does he have?",
        "1,250",  # the harness keeps the comma; numeric grading drops it
    ),
    "svamp": (
        {"Answer": 12.0, "Question": "How many pens are in 3 bags?", "Equation": "( 4.0 * 3.0 )",
         "Body": "Each bag has 4 pens", "Type": "Multiplication", "ID": "chal-1", "idx": 0},
        "Each bag has 4 pens. How many pens are in 3 bags?",  # a period joins body and question
        "12",
    ),
    "asdiv": (
        {"body": "Ann has 9 stamps.", "question": "How many stamps does she have after giving away 4?",
         "solution_type": "Subtraction", "answer": "5 (stamps)", "formula": "9-4=5", "idx": 0},
        "Ann has 9 stamps. How many stamps does she have after giving away 4?",
        "5",  # the unit in parentheses is dropped
    ),
    "mawps": (
        {"input": "Sam had 7 cards and lost 2.5 of them. How many are left?", "target": 4.5, "type": "singleop", "idx": 0},
        "Sam had 7 cards and lost 2.5 of them. How many are left?",
        "4.5",
    ),
    "tabmwp": (
        {"question": "Is the number of dogs greater than 3?", "choices": ["yes", "no"], "answer": "yes", "unit": None,
         "table_title": "Pets", "table": "Pet | Number\ndogs | 5", "table_for_pd": {"Pet": ["dogs"], "Number": ["5"]},
         "row_num": 2, "column_num": 2, "solution": "", "ques_type": "multi_choice", "ans_type": "boolean_text",
         "grade": 3, "split": "test", "idx": 0},
        "Read the following table regarding \"Pets\" and answer a question:\nPet | Number\ndogs | 5\n"
        "Is the number of dogs greater than 3? Please select from the following options: ['yes', 'no'] (Yes or No)",
        "yes",
    ),
    "mathqa": (
        {"problem": "a train travels 60 km in 1 hour . what is its speed ?", "rationale": "",
         "options": "a ) 50 kmph , b ) 60 kmph , c ) 70 kmph , d ) 80 kmph , e ) 90 kmph", "correct": "b",
         "annotated_formula": "", "linear_formula": "", "type": "physics"},
        "A train travels 60 km in 1 hour . what is its speed ?\n"
        "What of the following is the right choice? Explain your answer.\n"
        "(A) 50 kmph, (B) 60 kmph, (C) 70 kmph, (D) 80 kmph, (E) 90 kmph",
        "B",
    ),
    "mmlu_stem": (
        {"question": "What is 2+2?", "type": "elementary_mathematics", "choices": ["3", "4", "5", "6"], "answer": 1},
        "What is 2+2?\nWhat of the following is the right choice? Explain your answer.\n(A) 3, (B) 4, (C) 5, (D) 6",
        "B",
    ),
    "sat_math": (
        {"id": "1", "question": "If $x+1=3$, what is $x$?", "options": "A) 1 B) 2 C) 3 D) 4", "Answer": "B"},
        "If $x+1=3$, what is $x$?\nWhat of the following is the right choice? Explain your answer.\n(A) 1 (B) 2 (C) 3 (D) 4",
        "B",
    ),
    "math": (
        {"problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?", "solution": "So $\\frac12+\\frac14 = \\boxed{\\dfrac{3}{4}}$.",
         "answer": "\\frac{3}{4}", "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"},
        "What is $\\frac{1}{2}+\\frac{1}{4}$?",
        "\\frac{3}{4}",  # from the solution's \boxed{}, \dfrac normalised
    ),
}


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_fixture_record_question_gold_and_prompt(tmp_path: Path, benchmark: str) -> None:
    record, question, gold = FIXTURES[benchmark]
    root = _harness_dir(tmp_path, benchmark, [json.dumps(record)])
    exemplars = "Question: 1+1?\nAnswer: The answer is 2.\n\n\nQuestion: 2+2?\nAnswer: The answer is 4."
    (root / "prompts" / "cot").mkdir(parents=True)
    (root / "prompts" / "cot" / f"{PROMPT_FILE[benchmark]}.md").write_text("\n" + exemplars + "\n\n")
    [item] = load_harness_items(root, benchmark)
    assert item == {"id": record.get("idx", 0), "question": question, "gold": gold}
    wrapped = (f"Problem:\n{question}\nSolution:" if benchmark in ("math", "mathqa", "mmlu_stem", "sat_math")
               else f"Question: {question}\nAnswer:")
    # the prompt file is stripped, then three newlines separate it from the question
    assert build_prompt(root, benchmark, question) == exemplars + "\n\n\n" + wrapped
    out = tmp_path / "normalized.jsonl"
    assert normalize_benchmark(root, benchmark, out) == 1
    assert json.loads(out.read_text()) == {"id": item["id"], "prompt": exemplars + "\n\n\n" + wrapped,
                                           "question": question, "gold": gold}


def _harness_dir(tmp_path: Path, benchmark: str, lines: list[str]) -> Path:
    data = tmp_path / "data" / HARNESS_DATA_DIR[benchmark]
    data.mkdir(parents=True)
    (data / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_unknown_benchmark_lists_valid_names(tmp_path: Path) -> None:
    for call in (
        lambda: load_harness_items(tmp_path, "gsm9k"),
        lambda: build_prompt(tmp_path, "gsm9k", "q"),
        lambda: normalize_benchmark(tmp_path, "gsm9k", tmp_path / "x.jsonl"),
        lambda: extract_answer("gsm9k", "The answer is 3."),
        lambda: grade("gsm9k", "The answer is 3.", "3"),
    ):
        with pytest.raises(ValueError, match="gsm9k") as err:
            call()
        for name in BENCHMARKS:
            assert name in str(err.value)


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"question": "1+1?", "answer": "2\n#### 2", "idx": 0})
    root = _harness_dir(tmp_path / "a", "gsm8k", [good, "{not json"])
    with pytest.raises(ValueError, match=r"gsm8k/test\.jsonl:2"):
        load_harness_items(root, "gsm8k")
    root = _harness_dir(tmp_path / "b", "gsm8k", [good, good, json.dumps({"question": "no answer"})])
    with pytest.raises(ValueError, match=r"test\.jsonl:3: .*answer"):
        load_harness_items(root, "gsm8k")
    root = _harness_dir(tmp_path / "c", "mmlu_stem", [json.dumps({"question": "q", "choices": ["a"], "answer": 0})])
    with pytest.raises(ValueError, match=r"test\.jsonl:1"):
        load_harness_items(root, "mmlu_stem")
    with pytest.raises(FileNotFoundError):
        load_harness_items(tmp_path / "nowhere", "gsm8k")


def test_blank_or_non_object_line_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"question": "1+1?", "answer": "2\n#### 2", "idx": 0})
    root = _harness_dir(tmp_path / "a", "gsm8k", [good, "", good])  # a missing (empty) line
    with pytest.raises(ValueError, match=r"a/data/gsm8k/test\.jsonl:2: malformed gsm8k record"):
        load_harness_items(root, "gsm8k")
    root = _harness_dir(tmp_path / "b", "svamp", ["[1, 2]"])
    with pytest.raises(ValueError, match=r"svamp/test\.jsonl:1: .*JSON object"):
        load_harness_items(root, "svamp")
    root = _harness_dir(tmp_path / "c", "mathqa", [json.dumps({**FIXTURES["mathqa"][0], "correct": "z"})])
    with pytest.raises(ValueError, match=r"mathqa/test\.jsonl:1: .*a-e"):
        load_harness_items(root, "mathqa")
    with pytest.raises(FileNotFoundError, match=r"math: no test file at .*math_oai/test\.jsonl"):
        normalize_benchmark(tmp_path / "b", "math", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_malformed_normalized_row_names_file_and_line(tmp_path: Path) -> None:
    from rhocluster.evaluation.lm_eval_tasks.utils import read_normalized

    path = tmp_path / "gsm8k.jsonl"
    row = json.dumps({"id": 0, "prompt": "p", "question": "q", "gold": "1"})
    path.write_text(row + "\n" + json.dumps({"id": 1, "prompt": "p"}) + "\n")
    with pytest.raises(ValueError, match=r"gsm8k\.jsonl:2: malformed normalized row: missing question, gold"):
        read_normalized(path)
    path.write_text(row + "\n" + row + "\n{oops\n")
    with pytest.raises(ValueError, match=r"gsm8k\.jsonl:3: malformed normalized row"):
        read_normalized(path)


@needs_harness
def test_normalize_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "out" / "mathqa.jsonl"
    assert normalize_benchmark(HARNESS, "mathqa", out) == 1000  # the harness' 1000 MathQA items
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1000 and set(rows[0]) == {"id", "prompt", "question", "gold"}
    assert rows[0]["prompt"] == build_prompt(HARNESS, "mathqa", rows[0]["question"])
    assert normalize_benchmark(HARNESS, "math", out, limit=7) == 7
    assert len(out.read_text(encoding="utf-8").splitlines()) == 7
    assert sorted(p.name for p in out.parent.iterdir()) == ["mathqa.jsonl"]  # no temp files left


@needs_harness
@pytest.mark.parametrize("benchmark", SHIPPED)
def test_real_data_holds_every_item(tmp_path: Path, benchmark: str) -> None:
    from rhocluster.evaluation.benchmarks import HARNESS_ITEMS

    assert HARNESS_ITEMS[benchmark] == EXPECTED_COUNTS[benchmark]
    out = tmp_path / f"{benchmark}.jsonl"
    assert normalize_benchmark(HARNESS, benchmark, out, check_count=True) == EXPECTED_COUNTS[benchmark]


def test_a_truncated_benchmark_file_fails_naming_file_and_counts(tmp_path: Path) -> None:
    write_tiny_benchmarks(tmp_path, 12, seed=3)
    with pytest.raises(ValueError, match=r"data/gsm8k/test\.jsonl: 12 gsm8k items, expected 1319"):
        normalize_benchmark(tmp_path, "gsm8k", tmp_path / "out" / "gsm8k.jsonl", check_count=True)
    assert not (tmp_path / "out" / "gsm8k.jsonl").exists()
    assert normalize_benchmark(tmp_path, "gsm8k", tmp_path / "out" / "gsm8k.jsonl") == 12  # tiny sets: no check


# --------------------------------------------------------------------------------------
# Tiny benchmarks
# --------------------------------------------------------------------------------------


def test_tiny_benchmarks_load_for_all_nine(tmp_path: Path) -> None:
    write_tiny_benchmarks(tmp_path, 12, seed=3)
    for benchmark in BENCHMARKS:
        items = load_harness_items(tmp_path, benchmark)
        assert len(items) == 12
        for item in items:
            assert item["gold"]
            prompt = build_prompt(tmp_path, benchmark, item["question"])
            assert len(prompt) < 1200  # two short exemplars: a few hundred tokens
        if benchmark in ("mathqa", "mmlu_stem", "sat_math"):
            assert all(item["gold"] in "ABCDE" for item in items)
        # the gold, stated in the prompt's answer style, is graded correct
        item = items[0]
        if benchmark == "math":
            completion = f"So $x = \\boxed{{{item['gold']}}}$."
        elif benchmark in ("mathqa", "mmlu_stem", "sat_math"):
            completion = f"Final Answer: The final answer is ({item['gold']})."
        else:
            completion = f"The answer is {item['gold']}."
        assert grade(benchmark, completion, item["gold"]), (benchmark, item)
    for name in ("gsm8k", "minerva_math", "mathqa", "mmlu_stem"):
        shots = (tmp_path / "prompts" / "cot" / f"{name}.md").read_text().split("\n\n\n")
        assert len(shots) == 2


def test_tiny_benchmarks_are_deterministic(tmp_path: Path) -> None:
    def snapshot(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    write_tiny_benchmarks(tmp_path / "a", 5, seed=1)
    write_tiny_benchmarks(tmp_path / "b", 5, seed=1)
    write_tiny_benchmarks(tmp_path / "c", 5, seed=2)
    a, b, c = snapshot(tmp_path / "a"), snapshot(tmp_path / "b"), snapshot(tmp_path / "c")
    assert a == b
    assert a != c
    assert len(a) == 9 + 4
    with pytest.raises(ValueError):
        write_tiny_benchmarks(tmp_path / "d", 0, seed=1)


@needs_harness
@pytest.mark.parametrize("benchmark", SHIPPED)
def test_tiny_records_have_the_real_fields(tmp_path: Path, benchmark: str) -> None:
    write_tiny_benchmarks(tmp_path, 3, seed=0)
    real_path = HARNESS / "data" / HARNESS_DATA_DIR[benchmark] / "test.jsonl"
    with open(real_path, encoding="utf-8") as fh:
        real = json.loads(fh.readline())
    tiny = json.loads((tmp_path / "data" / HARNESS_DATA_DIR[benchmark] / "test.jsonl").read_text().splitlines()[0])
    assert list(tiny) == list(real)
    assert {k: type(v) for k, v in tiny.items()} == {k: type(v) for k, v in real.items()}


def test_tiny_tabmwp_has_tabmwp_fields(tmp_path: Path) -> None:
    write_tiny_benchmarks(tmp_path, 6, seed=0)
    records = [json.loads(line) for line in (tmp_path / "data" / "tabmwp" / "test.jsonl").read_text().splitlines()]
    fields = {"question", "choices", "answer", "unit", "table_title", "table", "table_for_pd", "row_num",
              "column_num", "solution", "ques_type", "ans_type", "grade", "split", "idx"}
    assert all(set(r) == fields for r in records)
    assert {r["ques_type"] for r in records} == {"free_text", "multi_choice"}
    question = load_harness_items(tmp_path, "tabmwp")[2]["question"]
    assert question.startswith('Read the following table regarding "') and "Please select from the following options: ['" in question
