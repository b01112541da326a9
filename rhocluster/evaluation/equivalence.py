"""Mathematical equality of two normalised answers: the harness' ``math_equal``.

1. identical strings;
2. both numbers: equal with relative tolerance 1e-4, also against gold/100 and gold*100;
3. string equality after dropping brackets and braces (case-insensitive);
4. tuples/intervals and ``pmatrix`` matrices element by element;
5. equations (``a=b`` against ``c=d`` up to sign, or ``x=5`` against ``5``);
6. symbolic equality with sympy (parse, ``equals``/``simplify``, numeric value, matrices).

Steps 1-2 (:func:`quick_verdict`) need no sympy. The others have no time limit here; the
grader runs them in :mod:`rhocluster.evaluation.sandbox`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rhocluster.evaluation.latex import parse_math

REL_TOL = 1e-4


def parse_number(text: Any) -> float | None:
    """Float value of ``text`` with commas removed; ``"5%"`` -> 0.05; None if not a number."""
    text = str(text).replace(",", "")
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith("%"):
        text = text[:-1]
        if text.endswith("\\"):
            text = text[:-1]
        try:
            return float(text) / 100
        except ValueError:
            pass
    return None


def numeric_equal(pred: float, gold: float) -> bool:
    """Equality with the harness' relative tolerance."""
    return math.isclose(gold, pred, rel_tol=REL_TOL)


def _numbers_equal(pred: float, gold: float) -> bool:
    # a gold of 25 accepts 0.25 and 2500 as well: percentages are written either way
    return any(numeric_equal(pred, candidate) for candidate in (gold / 100, gold, gold * 100))


def quick_verdict(pred: str, gold: str) -> bool | None:
    """Decide the cases that need no sympy; None when symbolic checks are needed."""
    if pred == gold:
        return True
    pred_num, gold_num = parse_number(pred), parse_number(gold)
    if pred_num is not None and gold_num is not None:
        try:
            return _numbers_equal(pred_num, gold_num)
        except OverflowError:
            return False
    if not pred:
        return False
    return None


def symbolic_equal(a: str, b: str) -> bool:
    """sympy equality of two answers: structural, ``equals``/``simplify``, equations, value, matrices."""
    import sympy

    x, y = parse_math(a), parse_math(b)
    try:
        if str(x) == str(y) or x == y:
            return True
    except Exception:  # noqa: BLE001 - comparisons of odd sympy objects can raise
        pass
    # constant expressions: the numeric value decides (what simplify(x - y) == 0 would say, fast)
    try:
        if not x.free_symbols and not y.free_symbols:
            vx, vy = complex(sympy.N(x)), complex(sympy.N(y))
            if vx.imag == 0 and vy.imag == 0 and math.isfinite(vx.real) and math.isfinite(vy.real):
                return numeric_equal(vx.real, vy.real)
    except Exception:  # noqa: BLE001
        pass
    try:
        if x.equals(y) or sympy.simplify(x - y) == 0:
            return True
    except Exception:  # noqa: BLE001
        pass
    try:
        if sympy.Abs(x.lhs - x.rhs).equals(sympy.Abs(y.lhs - y.rhs)):
            return True
    except Exception:  # noqa: BLE001
        pass
    try:
        if numeric_equal(float(sympy.N(x)), float(sympy.N(y))):
            return True
    except Exception:  # noqa: BLE001
        pass
    try:
        if x.shape == y.shape:
            if x.applyfunc(lambda v: round(v, 3)).equals(y.applyfunc(lambda v: round(v, 3))):
                return True
    except Exception:  # noqa: BLE001
        pass
    return False


_PMATRIX_BEGIN, _PMATRIX_END = "\\begin{pmatrix}", "\\end{pmatrix}"
_BRACKETED = re.compile(r"(\(|\[).+(\)|\])")


def _to_pmatrix(text: str) -> str:
    """``{1,2},{3,4}``-style rows as pmatrix strings (the harness' ``str_to_pmatrix``)."""
    rows = re.findall(r"\{.*,.*\}", text.strip())
    return ", ".join(_PMATRIX_BEGIN + row.strip("{}").replace(",", "\\") + _PMATRIX_END for row in rows)


def _is_matrix(text: str) -> bool:
    return text.startswith(("\\begin{pmatrix}", "\\begin{bmatrix}")) and text.endswith(
        ("\\end{pmatrix}", "\\end{bmatrix}")
    )


def _matrices_equal(pred: str, gold: str) -> bool:
    def rows(text: str) -> list[str]:
        body = text[len(_PMATRIX_BEGIN) : -len(_PMATRIX_END)]
        return [row.strip() for row in body.split("\\\\") if row.strip()]

    pred_rows, gold_rows = rows(pred), rows(gold)
    if len(pred_rows) != len(gold_rows):
        return False
    for pred_row, gold_row in zip(pred_rows, gold_rows):
        pred_cells, gold_cells = pred_row.split("&"), gold_row.split("&")
        if len(pred_cells) != len(gold_cells):
            return False
        if not all(math_equal(p, g) for p, g in zip(pred_cells, gold_cells)):
            return False
    return True


def math_equal(pred: str, gold: str) -> bool:
    """The harness' full comparison (without a time limit; see :func:`is_equiv`)."""
    quick = quick_verdict(str(pred), str(gold))
    if quick is not None:
        return quick
    gold, pred = str(gold).strip(), str(pred).strip()
    if "pmatrix" in pred and "pmatrix" not in gold:
        gold = _to_pmatrix(gold)

    # brackets and braces do not matter for the string comparison: (1,2] vs [1,2]
    pred_bare, gold_bare = pred, gold
    if (pred.startswith("[") and pred.endswith("]") and not gold.startswith("(")) or (
        pred.startswith("(") and pred.endswith(")") and not gold.startswith("[")
    ):
        pred_bare, gold_bare = pred_bare.strip("[]()"), gold_bare.strip("[]()")
    for char in "{}()":
        pred_bare, gold_bare = pred_bare.replace(char, ""), gold_bare.replace(char, "")
    if pred_bare.lower() == gold_bare.lower():
        return True

    # tuples and intervals, element by element
    if _BRACKETED.match(pred) and _BRACKETED.match(gold):
        pred_parts, gold_parts = pred[1:-1].split(","), gold[1:-1].split(",")
        if len(pred_parts) == len(gold_parts) and all(math_equal(p, g) for p, g in zip(pred_parts, gold_parts)):
            return True
    if _is_matrix(pred) and _is_matrix(gold) and _matrices_equal(pred, gold):
        return True

    # equations: "2x+y=3" vs "y=3-2x" up to sign; "x=5" vs "5"
    if pred.count("=") == 1 and gold.count("=") == 1:
        pred_l, pred_r = pred.split("=")
        gold_l, gold_r = gold.split("=")
        pred_diff = f"{pred_l.strip()} - ({pred_r.strip()})"
        gold_diff = f"{gold_l.strip()} - ({gold_r.strip()})"
        if symbolic_equal(pred_diff, gold_diff) or symbolic_equal(f"-({pred_diff})", gold_diff):
            return True
    elif pred.count("=") == 1 and len(pred.split("=")[0].strip()) <= 2 and "=" not in gold:
        if math_equal(pred.split("=")[1], gold):
            return True
    elif gold.count("=") == 1 and len(gold.split("=")[0].strip()) <= 2 and "=" not in pred:
        if math_equal(pred, gold.split("=")[1]):
            return True
    return symbolic_equal(pred, gold)
