"""Answer extraction from model completions, following Rho-1's evaluation harness.

Free-form answers: :func:`~rhocluster.evaluation.normalize.harness_extract` (Minerva
``Final answer is $X$. I hope``, else the last ``\\boxed{}``, else the text after "The answer
is", else the last number); the result goes through
:func:`~rhocluster.evaluation.normalize.normalize_answer` twice, as the harness does (once in
``extract_answer``, once in ``run_execute``). Multiple-choice answers are
the letter after "answer is" / "choice is", or ``"placeholder"`` when there is none.
"""

from __future__ import annotations

import re

from rhocluster.evaluation.benchmarks import MULTIPLE_CHOICE, STOP_STRINGS, check_benchmark
from rhocluster.evaluation.normalize import harness_extract, normalize_answer

NO_CHOICE = "placeholder"  # the harness' answer when a multiple-choice completion names no letter
_CHOICE = re.compile(r"answer is \(?(?P<letter>[abcde])\)?")


def is_empty_answer(answer: str) -> bool:
    """No answer extracted: an empty string, or no letter for a multiple-choice benchmark."""
    return answer in ("", NO_CHOICE)


def truncate_at_stop(completion: str, stop_strings: list[str] | None = None) -> str:
    """Cut ``completion`` at the first stop string and strip it, as generation would have."""
    for stop in STOP_STRINGS if stop_strings is None else stop_strings:
        if stop:
            completion = completion.split(stop, 1)[0]
    return completion.strip()


def extract_choice(text: str) -> str:
    """Letter A-E named by "answer is (X)" / "choice is X"; ``"placeholder"`` if none."""
    # a base model often starts a new problem after answering; only the first one counts
    text = text.split("Problem:", 1)[0].replace("choice is", "answer is")
    match = _CHOICE.search(text.lower())
    return match.group("letter").upper() if match else NO_CHOICE


def extract_answer(benchmark: str, completion: str) -> str:
    """Normalised answer of ``completion`` for ``benchmark``, as the harness extracts it.

    The completion is first cut at the stop strings (generation stops there).
    Multiple-choice benchmarks (mathqa, mmlu_stem, sat_math) give a letter A-E or
    ``"placeholder"``; the others give a normalised answer string ("" when none).
    """
    text = truncate_at_stop(completion)
    if check_benchmark(benchmark) in MULTIPLE_CHOICE:
        return normalize_answer(extract_choice(text))
    return normalize_answer(harness_extract(text))
