"""Answer strings the way Rho-1's evaluation harness writes them.

:func:`normalize_answer` is the harness' ``strip_string``; :func:`harness_extract` its free-form
``extract_answer`` (Minerva ``Final answer is $X$. I hope``, else the last ``\\boxed{}``, else the
text after "The answer is", else the last number). Both serve gold parsing
(:mod:`rhocluster.evaluation.benchmarks`: MATH golds are the boxed answers of the reference
solutions) and completion grading (:mod:`rhocluster.evaluation.answers`).
"""

from __future__ import annotations

import re
from typing import Any

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
# Free-form answer extraction (the harness' ``extract_answer``)
# --------------------------------------------------------------------------------------

_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")
_NEWLINE_INDENT = re.compile(r"\n\s*")


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
