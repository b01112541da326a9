"""Tiny stand-ins for the nine benchmarks, in the harness' own file layout and formats.

``write_tiny_benchmarks`` writes ``data/<dir>/test.jsonl`` for every benchmark with the
same field names and value types as the real files (TabMWP as the harness stores its
1000-item sample: the TabMWP record fields plus ``idx``), and ``prompts/cot/*.md`` in the
real prompts' format but with two short exemplars, so a whole prompt fits the 512
positions of a tiny model. Items are simple generated problems (one- and two-step integer
word problems, small linear equations with ``\\boxed`` answers for MATH, 4-5 option
multiple choice), deterministic under ``seed``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rhocluster.common.atomic import atomic_path, save_text
from rhocluster.evaluation.benchmarks import BENCHMARKS, HARNESS_DATA_DIR

_NAMES = ("Tom", "Ann", "Sam", "Mia", "Ben", "Liz", "Max", "Eva", "Leo", "Zoe")
_OBJECTS = ("apples", "pens", "books", "cards", "coins", "eggs", "toys", "cups", "shells", "stamps")

PROMPTS: dict[str, str] = {
    "gsm8k": (
        "Question: Tom has 3 apples. He buys 4 more apples. How many apples does he have now?\n"
        "Answer: Tom starts with 3 apples. He buys 4 more. 3 + 4 = 7. The answer is 7.\n\n\n"
        "Question: Ann has 9 pens. She gives away 5 pens. How many pens does she have left?\n"
        "Answer: Ann starts with 9 pens. She gives away 5. 9 - 5 = 4. The answer is 4."
    ),
    "minerva_math": (
        "Problem:\nSolve for $x$: $2x + 3 = 7$.\nSolution:\n"
        "Subtracting 3 from both sides gives $2x = 4$, so $x = \\boxed{2}$.\n"
        "Final Answer: The final answer is $2$. I hope it is correct.\n\n\n"
        "Problem:\nWhat is $6 \\cdot 4$?\nSolution:\nWe have $6 \\cdot 4 = \\boxed{24}$.\n"
        "Final Answer: The final answer is $24$. I hope it is correct."
    ),
    "mathqa": (
        "Problem:\nTom has 3 apples and buys 4 more . how many apples does he have ?\n"
        "What of the following is the right choice? Explain your answer.\n"
        "(A) 6, (B) 7, (C) 8, (D) 9, (E) 10\nSolution:\n"
        "Tom has 3 + 4 = 7 apples.\nFinal Answer: The final answer is (B).\n\n\n"
        "Problem:\nA box holds 5 rows of 2 eggs . how many eggs are in the box ?\n"
        "What of the following is the right choice? Explain your answer.\n"
        "(A) 7, (B) 12, (C) 3, (D) 15, (E) 10\nSolution:\n"
        "There are 5 * 2 = 10 eggs.\nFinal Answer: The final answer is (E)."
    ),
    "mmlu_stem": (
        "Problem:\nWhat is $8 - 3$?\n"
        "What of the following is the right choice? Explain your answer.\n"
        "(A) 4, (B) 5, (C) 6, (D) 11\nSolution:\n"
        "We have $8 - 3 = 5$.\nFinal Answer: The final answer is (B).\n\n\n"
        "Problem:\nIf $x + 2 = 6$, what is $x$?\n"
        "What of the following is the right choice? Explain your answer.\n"
        "(A) 4, (B) 8, (C) 3, (D) 2\nSolution:\n"
        "Subtracting 2 gives $x = 4$.\nFinal Answer: The final answer is (A)."
    ),
}


@dataclass(frozen=True)
class _WordProblem:
    """One generated arithmetic word problem."""

    body: str  # the situation, ending with a period
    question: str  # the final question
    answer: int
    steps: str  # one-line worked solution, without the final answer sentence
    formula: str  # "3+4=7"
    equation: str  # SVAMP style "( 3.0 + 4.0 )"
    kind: str  # Addition / Subtraction / Multiplication / TwoStep

    @property
    def text(self) -> str:
        return f"{self.body} {self.question}"


def _word_problem(rng: random.Random) -> _WordProblem:
    name, obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    kind = rng.choice(("Addition", "Subtraction", "Multiplication", "TwoStep"))
    if kind == "Addition":
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        return _WordProblem(
            f"{name} has {a} {obj}. {name} gets {b} more {obj}.",
            f"How many {obj} does {name} have now?",
            a + b, f"{name} has {a} + {b} = {a + b} {obj}.", f"{a}+{b}={a + b}",
            f"( {a}.0 + {b}.0 )", kind,
        )
    if kind == "Subtraction":
        b = rng.randint(2, 20)
        a = b + rng.randint(1, 20)
        return _WordProblem(
            f"{name} has {a} {obj}. {name} gives away {b} {obj}.",
            f"How many {obj} does {name} have left?",
            a - b, f"{name} has {a} - {b} = {a - b} {obj} left.", f"{a}-{b}={a - b}",
            f"( {a}.0 - {b}.0 )", kind,
        )
    if kind == "Multiplication":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return _WordProblem(
            f"{name} has {a} bags with {b} {obj} in each bag.",
            f"How many {obj} does {name} have?",
            a * b, f"{name} has {a} * {b} = {a * b} {obj}.", f"{a}*{b}={a * b}",
            f"( {a}.0 * {b}.0 )", kind,
        )
    a, b = rng.randint(5, 30), rng.randint(2, 20)
    c = rng.randint(1, a + b - 1)
    return _WordProblem(
        f"{name} has {a} {obj}. {name} gets {b} more {obj} and then gives away {c}.",
        f"How many {obj} does {name} have now?",
        a + b - c, f"{name} has {a} + {b} = {a + b} {obj}, then {a + b} - {c} = {a + b - c}.",
        f"{a}+{b}-{c}={a + b - c}", f"( ( {a}.0 + {b}.0 ) - {c}.0 )", kind,
    )


def _options(rng: random.Random, answer: int, count: int) -> tuple[list[int], int]:
    """``count`` distinct positive options including ``answer``; returns (options, answer index)."""
    values = {answer}
    while len(values) < count:
        candidate = answer + rng.choice((-1, 1)) * rng.randint(1, 9)
        if candidate > 0:
            values.add(candidate)
    options = sorted(values)
    rng.shuffle(options)
    return options, options.index(answer)


def _gsm8k(rng: random.Random, idx: int) -> dict[str, Any]:
    p = _word_problem(rng)
    # GSM8K marks each calculation as <<expression=result>>
    expr, result = p.formula.split("=")
    return {"question": p.text, "answer": f"{p.steps} <<{expr}={result}>>{result}\n#### {p.answer}", "idx": idx}


def _svamp(rng: random.Random, idx: int) -> dict[str, Any]:
    p = _word_problem(rng)
    kind = {"Multiplication": "Multiplication", "TwoStep": "Addition"}.get(p.kind, p.kind)
    return {
        "Answer": float(p.answer), "Question": p.question, "Equation": p.equation,
        "Body": p.body, "Type": kind, "ID": f"tiny-{idx}", "idx": idx,
    }


def _asdiv(rng: random.Random, idx: int) -> dict[str, Any]:
    p = _word_problem(rng)
    unit = p.question.split()[2]  # "How many <objects> ..."
    return {
        "body": p.body, "question": p.question, "solution_type": p.kind,
        "answer": f"{p.answer} ({unit})", "formula": p.formula, "idx": idx,
    }


def _mawps(rng: random.Random, idx: int) -> dict[str, Any]:
    p = _word_problem(rng)
    return {"input": p.text, "target": float(p.answer), "type": "singleop", "idx": idx}


def _tabmwp(rng: random.Random, idx: int) -> dict[str, Any]:
    obj = rng.choice(_OBJECTS)
    names = rng.sample(_NAMES, rng.randint(2, 4))
    counts = [rng.randint(1, 20) for _ in names]
    column = f"Number of {obj}"
    table = "\n".join([f"Name | {column}"] + [f"{n} | {c}" for n, c in zip(names, counts)])
    record: dict[str, Any] = {
        "question": "", "choices": None, "answer": "", "unit": None,
        "table_title": f"{obj.capitalize()} collected", "table": table,
        "table_for_pd": {"Name": names, column: [str(c) for c in counts]},
        "row_num": len(names) + 1, "column_num": 2, "solution": "",
        "ques_type": "free_text", "ans_type": "integer_number", "grade": 2, "split": "test",
    }
    if idx % 3 == 2 and len(set(counts[:2])) == 2:
        # multiple choice over names, like TabMWP's extractive questions
        winner = names[0] if counts[0] > counts[1] else names[1]
        record.update(
            question=f"Who collected more {obj}, {names[0]} or {names[1]}?",
            choices=[names[0], names[1]], answer=winner, ques_type="multi_choice",
            ans_type="extractive_text",
            solution=f"{names[0]} has {counts[0]} and {names[1]} has {counts[1]}. {winner} collected more.",
        )
    else:
        total = sum(counts)
        record.update(
            question=f"How many {obj} were collected in all?", answer=str(total),
            solution=f"Add the numbers: {' + '.join(map(str, counts))} = {total}.",
        )
    record["idx"] = idx
    return record


def _mathqa(rng: random.Random, idx: int) -> dict[str, Any]:
    p = _word_problem(rng)
    options, correct = _options(rng, p.answer, 5)
    letters = "abcde"
    problem = f"{p.body} {p.question}".replace(".", " .").replace("?", " ?")
    problem = problem[0].lower() + problem[1:]  # MathQA problems are lower-cased
    return {
        "problem": problem,
        "rationale": f'"{p.steps} answer : {letters[correct]}"',
        "options": " , ".join(f"{letter} ) {value}" for letter, value in zip(letters, options)),
        "correct": letters[correct],
        "annotated_formula": p.formula.split("=")[0],
        "linear_formula": "",
        "type": "general",
    }


def _arith_question(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 20), rng.randint(2, 9)
    op = rng.choice(("+", "-", "*", "x"))
    if op == "+":
        return f"What is ${a} + {b}$?", a + b
    if op == "-":
        return f"What is ${a + b} - {b}$?", a
    if op == "*":
        return f"What is ${a} \\cdot {b}$?", a * b
    return f"If $x + {b} = {a + b}$, what is $x$?", a


def _mmlu_stem(rng: random.Random, idx: int) -> dict[str, Any]:
    question, answer = _arith_question(rng)
    options, correct = _options(rng, answer, 4)
    return {
        "question": question, "type": "elementary_mathematics",
        "choices": [str(v) for v in options], "answer": correct,
    }


def _sat_math(rng: random.Random, idx: int) -> dict[str, Any]:
    question, answer = _arith_question(rng)
    options, correct = _options(rng, answer, 4)
    return {
        "id": str(idx), "question": question,
        "options": " ".join(f"{letter}) {value}" for letter, value in zip("ABCD", options)),
        "Answer": "ABCD"[correct],
    }


def _math(rng: random.Random, idx: int) -> dict[str, Any]:
    a, x = rng.randint(2, 9), rng.randint(1, 12)
    b = rng.randint(1, 20)
    c = a * x + b
    return {
        "problem": f"Solve for $x$: ${a}x + {b} = {c}$.",
        "solution": f"Subtracting {b} from both sides gives ${a}x = {c - b}$, so $x = \\boxed{{{x}}}$.",
        "answer": str(x), "subject": "Algebra", "level": 1,
        "unique_id": f"test/algebra/tiny-{idx}.json",
    }


_GENERATORS: dict[str, Callable[[random.Random, int], dict[str, Any]]] = {
    "gsm8k": _gsm8k, "svamp": _svamp, "asdiv": _asdiv, "mawps": _mawps, "tabmwp": _tabmwp,
    "mathqa": _mathqa, "mmlu_stem": _mmlu_stem, "sat_math": _sat_math, "math": _math,
}


def write_tiny_benchmarks(out_dir: Path, n_per_benchmark: int, seed: int) -> None:
    """Write a harness-layout directory with ``n_per_benchmark`` generated items per benchmark."""
    if n_per_benchmark < 1:
        raise ValueError(f"n_per_benchmark must be >= 1, got {n_per_benchmark}")
    out_dir = Path(out_dir)
    for benchmark in BENCHMARKS:
        # seeding with a string is stable across runs and Python versions
        rng = random.Random(f"rho1-tiny:{seed}:{benchmark}")
        lines = [json.dumps(_GENERATORS[benchmark](rng, idx), ensure_ascii=False) for idx in range(n_per_benchmark)]
        with atomic_path(out_dir / "data" / HARNESS_DATA_DIR[benchmark] / "test.jsonl", ".jsonl") as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, text in PROMPTS.items():
        save_text(out_dir / "prompts" / "cot" / f"{name}.md", text)
