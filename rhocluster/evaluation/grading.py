"""Grading of completions against gold answers, following Rho-1's evaluation harness.

``grade`` extracts the answer (:mod:`rhocluster.evaluation.answers`) and compares it with
the gold through :func:`is_equiv`, the harness' ``math_equal``
(:mod:`rhocluster.evaluation.equivalence`). Numbers and identical strings are decided
in-process; whatever needs sympy runs in a worker process under a hard time limit
(:mod:`rhocluster.evaluation.sandbox`; the harness gives each comparison 3 s). A timed-out
comparison counts as wrong and is logged and counted (:func:`timeout_count`).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from rhocluster.evaluation.answers import extract_answer
from rhocluster.evaluation.benchmarks import MULTIPLE_CHOICE, check_benchmark
from rhocluster.evaluation.equivalence import quick_verdict
from rhocluster.evaluation.sandbox import math_equal_within

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3.0  # the harness' per-comparison limit (pebble ProcessPool timeout=3)
TIMEOUT_ENV = "RHO1_GRADE_TIMEOUT_S"  # overrides DEFAULT_TIMEOUT_S for the lm-eval tasks


@dataclass(frozen=True)
class Verdict:
    """Outcome of grading one completion."""

    answer: str  # the extracted, normalised answer
    correct: bool
    timed_out: bool  # the symbolic check hit the time limit (then correct is False)


_TIMEOUTS = 0
_TIMEOUT_LOCK = threading.Lock()


def configured_timeout_s() -> float:
    """Per-comparison time limit: ``$RHO1_GRADE_TIMEOUT_S`` if set, else the harness' 3 s."""
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        timeout_s = float(value)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None
    if not timeout_s > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be positive, got {value!r}")
    return timeout_s


def timeout_count() -> int:
    """How many comparisons in this process hit the time limit so far."""
    return _TIMEOUTS


def _compare(pred: str, gold: str, timeout_s: float) -> tuple[bool, bool]:
    """(equal, timed_out)."""
    quick = quick_verdict(pred, gold)
    if quick is not None:
        return quick, False
    result = math_equal_within(pred, gold, timeout_s)
    if result is None:
        global _TIMEOUTS
        with _TIMEOUT_LOCK:
            _TIMEOUTS += 1
        log.warning("equivalence check timed out after %.1f s (counted wrong): pred=%r gold=%r", timeout_s, pred, gold)
        return False, True
    return result, False


def is_equiv(pred: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether two normalised answers are mathematically equal (the harness' ``math_equal``).

    The symbolic part runs in a worker process killed after ``timeout_s`` seconds; a
    timeout counts as not equal (logged, and counted by :func:`timeout_count`).
    """
    return _compare(str(pred), str(gold), timeout_s)[0]


def grade_verdict(benchmark: str, completion: str, gold: str, timeout_s: float | None = None) -> Verdict:
    """Grade one completion and say what was extracted and whether the check timed out.

    ``timeout_s``: the symbolic comparison's time limit, :func:`configured_timeout_s` unless given."""
    answer = extract_answer(check_benchmark(benchmark), completion)
    if benchmark in MULTIPLE_CHOICE:
        return Verdict(answer, answer == str(gold), False)  # letters: nothing to reason about
    correct, timed_out = _compare(answer, str(gold), configured_timeout_s() if timeout_s is None else timeout_s)
    return Verdict(answer, correct, timed_out)


def grade(benchmark: str, completion: str, gold: str) -> bool:
    """Whether ``completion`` answers a ``benchmark`` item whose normalised gold is ``gold`` (symbolic
    comparisons limited to ``$RHO1_GRADE_TIMEOUT_S``, default 3 s)."""
    return grade_verdict(benchmark, completion, gold).correct
