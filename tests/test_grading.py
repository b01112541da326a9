"""Grading: parity with Rho-1's harness on its released completions, and constructed cases."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

import rhocluster.evaluation.normalize as normalize
from rhocluster.evaluation.answers import NO_CHOICE, extract_answer, truncate_at_stop
from rhocluster.evaluation.equivalence import parse_number
from rhocluster.evaluation.grading import grade, grade_verdict, is_equiv, timeout_count
from rhocluster.evaluation.latex import latex_to_sympy

SHARED = Path(__file__).parents[2] / "shared"
OUTPUTS = SHARED / "reference" / "rho1-outputs" / "rho-math-1b-v0.1"
needs_outputs = pytest.mark.skipif(
    not OUTPUTS.is_dir(), reason=f"Rho-1's released completions not found at {OUTPUTS} (shared/ absent)"
)


def _released(name: str) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in open(OUTPUTS / f"{name}.jsonl", encoding="utf-8")]
    metrics = json.loads((OUTPUTS / f"{name}.metrics.json").read_text())
    return rows, metrics


# --------------------------------------------------------------------------------------
# Parity with the harness' verdicts on all 1,819 released completions
# --------------------------------------------------------------------------------------


@needs_outputs
@pytest.mark.parametrize("name", ["gsm8k", "math"])
def test_verdicts_agree_with_harness(name: str) -> None:
    rows, metrics = _released(name)
    assert len(rows) == metrics["num_samples"]
    verdicts = [grade(name, row["code"][0], row["gt"]) for row in rows]
    agree = sum(v == row["score"][0] for v, row in zip(verdicts, rows))
    agreement = agree / len(rows)
    accuracy = 100 * sum(verdicts) / len(rows)
    print(f"{name}: agreement {agree}/{len(rows)} = {100 * agreement:.2f}%, accuracy {accuracy:.2f} "
          f"(published {metrics['acc']})")
    assert agreement >= 0.995
    assert abs(round(accuracy, 1) - metrics["acc"]) <= 0.2 + 1e-9


@needs_outputs
@pytest.mark.parametrize("name", ["gsm8k", "math"])
def test_extracted_answers_match_harness_predictions(name: str) -> None:
    rows, _ = _released(name)
    mismatches = [(row["idx"], row["pred"][0]) for row in rows if extract_answer(name, row["code"][0]) != row["pred"][0]]
    assert mismatches == []


@needs_outputs
def test_fast_unit_filter_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # normalize_answer skips the 500 unit regexes when a combined regex finds no unit;
    # forcing the slow path must give identical results
    rows = _released("gsm8k")[0][:300] + _released("math")[0]
    strings = [s for row in rows for s in (row["gt"], row["pred"][0], row["code"][0][-120:])]
    strings += ["5 cm", "12 mph", "q . 7", "7 rs .", "a . m 5", "5 apples", "rs 500", "The fox", "9 sq m"]
    fast = [normalize.normalize_answer(s) for s in strings]
    monkeypatch.setattr(normalize, "_ANY_UNIT", re.compile(""))
    assert [normalize.normalize_answer(s) for s in strings] == fast


# --------------------------------------------------------------------------------------
# Constructed completions
# --------------------------------------------------------------------------------------

FREE_FORM_CASES = [
    # (benchmark, completion, gold, expected)
    ("gsm8k", "3 + 4 = 7. The answer is 7.", "7", True),
    ("gsm8k", "3 + 4 = 7. The answer is 7.\n\nQuestion: Bob has 2. The answer is 9.", "7", True),
    ("gsm8k", "3 + 4 = 7. The answer is 7.\n\nProblem:\nWhat is 9?", "7", True),
    ("gsm8k", "First 2 + 2 = 4, then 4 * 3 = 12 and so on. So the result is 12", "12", True),  # last number
    ("gsm8k", "He pays 80,000 + 50,000 = 130,000. The answer is 130,000.", "130000", True),
    ("gsm8k", "The answer is $1,250.", "1250", True),
    ("gsm8k", "The answer is 12 apples.", "12", True),
    ("gsm8k", "The answer is 45 minutes.", "45", True),
    ("gsm8k", "The answer is 18.00", "18", True),
    ("gsm8k", "The answer is eighteen.", "18", True),
    ("gsm8k", "The answer is 25%.", "25", True),
    ("gsm8k", "The answer is 0.25.", "25", True),  # percentages are accepted /100 and x100
    ("gsm8k", "The answer is 2500.", "25", True),
    ("gsm8k", "The answer is 7.", "8", False),
    ("gsm8k", "The answer is 7.00001.", "7", True),  # relative tolerance 1e-4
    ("gsm8k", "The answer is 7.01.", "7", False),
    ("gsm8k", "I do not know.", "5", False),
    # harness parity: everything after "The answer is" is the answer, so rambling in the same
    # sentence spoils it (the model stops at "\n\nQuestion:" in practice)
    ("gsm8k", "The answer is 8. I checked: 8 is more than 3.", "8", False),
    ("math", "So $x = \\boxed{8}$. Let me double check: 8 + 0 = 8, and 3 < 8.", "8", True),
    ("math", "So $x = \\boxed{\\frac{1}{2}}$.", "0.5", True),
    ("math", "Thus $\\boxed{0.5}$.", "\\frac{1}{2}", True),
    ("math", "$\\boxed{\\dfrac{3}{4}}$", "\\frac{3}{4}", True),
    ("math", "$\\boxed{3/4}$", "\\frac{3}{4}", True),
    ("math", "$\\boxed{0.333}$", "\\frac{1}{3}", False),  # relative tolerance 1e-4
    ("math", "$\\boxed{0.33333}$", "\\frac{1}{3}", True),
    ("math", "$\\boxed{5\\text{ cm}}$", "5", True),
    ("math", "$\\boxed{\\text{Evelyn}}$", "Evelyn", True),
    ("math", "$\\boxed{\\text{(C)}}$", "(C)", True),
    ("math", "$\\boxed{50\\%}$", "50", True),
    ("math", "$\\boxed{45^\\circ}$", "45", True),
    ("math", "$\\boxed{\\$18.90}$", "18.90", True),
    ("math", "$\\boxed{[2,5)}$", "[2,5)", True),
    ("math", "$\\boxed{[2, 5.0)}$", "[2,5)", True),
    ("math", "$\\boxed{[3,5)}$", "[2,5)", False),
    ("math", "$\\boxed{(-\\infty, 3) \\cup (3, \\infty)}$", "(-\\infty,3)\\cup(3,\\infty)", True),
    ("math", "$\\boxed{(3, \\frac{\\pi}{2})}$", "(3,\\frac{\\pi}{2})", True),
    ("math", "$\\boxed{(3, 1.5708)}$", "(3,\\frac{\\pi}{2})", True),
    ("math", "$\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}}$", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),
    ("math", "$\\boxed{\\begin{bmatrix} 1/2 \\\\ 0.75 \\end{bmatrix}}$",
     "\\begin{pmatrix}\\frac{1}{2}\\\\\\frac{3}{4}\\end{pmatrix}", True),
    ("math", "$\\boxed{\\begin{pmatrix} 1 & 3 \\\\ 3 & 4 \\end{pmatrix}}$", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", False),
    ("math", "$\\boxed{2\\sqrt{2}}$", "\\sqrt{8}", True),
    ("math", "$\\boxed{\\frac{\\sqrt{2}}{2}}$", "\\frac{1}{\\sqrt{2}}", True),
    ("math", "$\\boxed{x^2+2x+1}$", "(x+1)^2", True),
    ("math", "$\\boxed{x^2+2x+2}$", "(x+1)^2", False),
    ("math", "$\\boxed{y = 2x + 3}$", "2x+3", True),
    ("math", "$\\boxed{2x - y + 3 = 0}$", "y=2x+3", True),
    ("math", "$\\boxed{\\pi/2}$", "\\frac{\\pi}{2}", True),
    ("math", "$\\boxed{6\\pi}$", "6\\pi", True),
    ("math", "$\\boxed{3, 5}$", "3,5", True),
    ("math", "Final Answer: The final answer is $7$. I hope it is correct.", "7", True),
    ("math", "We get $\\boxed{}$", "5", False),
]


@pytest.mark.parametrize(("benchmark", "completion", "gold", "expected"), FREE_FORM_CASES)
def test_free_form_cases(benchmark: str, completion: str, gold: str, expected: bool) -> None:
    assert grade(benchmark, completion, gold) is expected


CHOICE_CASES = [
    ("mathqa", "So 7 apples.\nFinal Answer: The final answer is (B).", "B", True),
    ("mathqa", "The answer is b", "B", True),
    ("mathqa", "the correct choice is (e).", "E", True),
    ("mathqa", "Final Answer: The final answer is (C).\n\nProblem:\nNext one. The answer is (D)", "C", True),
    ("mathqa", "Final Answer: The final answer is (C).", "D", False),
    ("mmlu_stem", "We have 8 - 3 = 5. The answer is (B).", "B", True),
    ("mmlu_stem", "It is 5, which is option B.", "B", False),  # no "answer is": nothing extracted
    ("sat_math", "The answer is (A)", "A", True),
    ("sat_math", "I do not know.", "A", False),
]


@pytest.mark.parametrize(("benchmark", "completion", "gold", "expected"), CHOICE_CASES)
def test_multiple_choice_cases(benchmark: str, completion: str, gold: str, expected: bool) -> None:
    assert grade(benchmark, completion, gold) is expected


def test_multiple_choice_extraction_gives_letters() -> None:
    assert extract_answer("mathqa", "so the answer is ( d ) .") == NO_CHOICE  # harness: "( d" is no match
    assert extract_answer("mmlu_stem", "The answer is (c).") == "C"
    assert extract_answer("sat_math", "Problem:\nThe answer is (A)") == NO_CHOICE


def test_truncation_at_stop_strings() -> None:
    assert truncate_at_stop("  7 apples.\n\nQuestion: more</s>") == "7 apples."
    assert truncate_at_stop("a</s>b") == "a"
    assert truncate_at_stop("x\n\nProblem:\ny") == "x"
    assert extract_answer("gsm8k", "The answer is 3.</s>The answer is 4.") == "3"


def test_parse_number() -> None:
    assert parse_number("1,250") == 1250
    assert parse_number("12.5%") == pytest.approx(0.125)
    assert parse_number("12.5\\%") == pytest.approx(0.125)
    assert parse_number("\\frac{1}{2}") is None
    assert parse_number("") is None


def test_latex_reader() -> None:
    import sympy

    x = sympy.Symbol("x")
    assert latex_to_sympy("\\frac{1}{2}") == sympy.Rational(1, 2)
    assert latex_to_sympy("2x^2") == 2 * x**2
    assert latex_to_sympy("\\sqrt[3]{8}") == 2
    assert latex_to_sympy("\\binom{5}{2}") == 10
    assert latex_to_sympy("|{-3}|") == 3
    assert latex_to_sympy("E") == sympy.Symbol("E")  # a letter, not Euler's number
    assert isinstance(latex_to_sympy("y=2x"), sympy.Eq)
    with pytest.raises(ValueError):
        latex_to_sympy("\\unknowncommand{3}")
    with pytest.raises(ValueError):
        latex_to_sympy("__import__('os')")


def test_is_equiv_basics() -> None:
    assert is_equiv("5", "5.0")
    assert is_equiv("\\frac{14}{3}", "\\frac{28}{6}")
    assert not is_equiv("", "5")
    assert is_equiv("p-q", "-q+p")
    assert not is_equiv("\\frac{13}{3}", "\\frac{14}{3}")


# --------------------------------------------------------------------------------------
# The hard time limit
# --------------------------------------------------------------------------------------

HANGING = "10^{10^{10}}"  # sympy would compute a 33-billion-bit integer


def test_hanging_input_counts_as_wrong_quickly() -> None:
    before = timeout_count()
    start = time.monotonic()
    assert is_equiv(HANGING, "5", timeout_s=0.5) is False
    assert time.monotonic() - start < 5
    assert timeout_count() == before + 1
    # the worker is replaced and keeps serving
    assert is_equiv("\\frac{1}{2}", "0.5\\cdot 1", timeout_s=5)


def test_time_limit_works_from_threads() -> None:
    before = timeout_count()
    results: list[bool] = []

    def work() -> None:
        results.append(is_equiv(HANGING, "7", timeout_s=0.3))
        results.append(is_equiv("x^2-1", "(x-1)(x+1)", timeout_s=10))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False, False, True, True]
    assert timeout_count() == before + 2


def test_grade_verdict_reports_timeouts() -> None:
    verdict = grade_verdict("math", f"$\\boxed{{{HANGING}}}$", "5", timeout_s=0.3)
    assert verdict == verdict.__class__(HANGING, False, True)
    assert grade_verdict("gsm8k", "The answer is 5.", "5").timed_out is False


def test_grade_uses_the_configured_time_limit(monkeypatch):
    import rhocluster.evaluation.grading as grading

    seen = []
    monkeypatch.setattr(grading, "_compare", lambda pred, gold, timeout_s: seen.append(timeout_s) or (True, False))
    monkeypatch.setenv(grading.TIMEOUT_ENV, "0.25")
    assert grading.grade("math", "The answer is $x^2$", "x^2")
    assert grading.grade_verdict("math", "The answer is $x^2$", "x^2", timeout_s=7.0).correct
    monkeypatch.delenv(grading.TIMEOUT_ENV)
    grading.grade("gsm8k", "The answer is 3", "3")
    assert seen == [0.25, 7.0, grading.DEFAULT_TIMEOUT_S]


def test_no_letter_counts_as_an_empty_prediction():
    from rhocluster.evaluation.answers import is_empty_answer

    assert extract_answer("mathqa", "I am not sure.") == NO_CHOICE and is_empty_answer(NO_CHOICE)
    assert is_empty_answer("") and not is_empty_answer("B") and not is_empty_answer("0")
