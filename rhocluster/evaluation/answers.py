"""Answer extraction from model completions, following Rho-1's evaluation harness.

Free-form answers: ``Final answer is $X$. I hope`` (Minerva style), else the last
``\\boxed{}``, else the text after "The answer is", else the last number; the result goes
through :func:`~rhocluster.evaluation.benchmarks.normalize_answer` twice, as the harness
does (once in ``extract_answer``, once in ``run_execute``). Multiple-choice answers are
the letter after "answer is" / "choice is", or ``"placeholder"`` when there is none.
"""

from __future__ import annotations

import re

from rhocluster.evaluation.benchmarks import MULTIPLE_CHOICE, STOP_STRINGS, check_benchmark, normalize_answer

# what the harness answers when a multiple-choice completion names no letter
NO_CHOICE = "placeholder"  # the harness' answer when a multiple-choice completion names no letter


def is_empty_answer(answer: str) -> bool:
    """No answer extracted: an empty string, or no letter for a multiple-choice benchmark."""
    return answer in ("", NO_CHOICE)

_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")
_NEWLINE_INDENT = re.compile(r"\n\s*")
_CHOICE = re.compile(r"answer is \(?(?P<letter>[abcde])\)?")


def truncate_at_stop(completion: str, stop_strings: list[str] | None = None) -> str:
    """Cut ``completion`` at the first stop string and strip it, as generation would have."""
    for stop in STOP_STRINGS if stop_strings is None else stop_strings:
        if stop:
            completion = completion.split(stop, 1)[0]
    return completion.strip()


def _boxed_content(text: str) -> str:
    r"""Content of the last ``\boxed``: balanced braces, or up to the next ``$`` if unbraced."""
    tail = text.split("boxed")[-1]
    if not tail:
        return ""
    if tail[0] != "{":
        return tail.split("$")[0].strip()
    depth = 1
    out = []
    for char in tail[1:]:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                break
        out.append(char)
    return "".join(out)


def harness_extract(text: str) -> str:
    """The harness' free-form ``extract_answer`` (with its single normalisation)."""
    if "final answer is $" in text and "$. I hope" in text:
        pred = text.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in text:
        if not text.split("boxed")[-1]:
            return ""  # "...boxed" at the very end: the harness returns before normalising
        pred = _boxed_content(text)
    elif "he answer is" in text:
        pred = text.split("he answer is")[-1].strip()
    elif "final answer is" in text:
        pred = text.split("final answer is")[-1].strip()
    else:
        numbers = _LAST_NUMBER.findall(text.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    pred = _NEWLINE_INDENT.sub("", pred)
    if pred.startswith(":"):
        pred = pred[1:]
    if pred.endswith("."):
        pred = pred[:-1]
    if pred.endswith("/"):
        pred = pred[:-1]
    return normalize_answer(pred)


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
