"""Grading of completions against gold answers, following Rho-1's evaluation harness.

``grade`` extracts the answer (:mod:`rhocluster.evaluation.answers`) and compares it with
the gold through :func:`is_equiv`, the harness' ``math_equal``:

1. identical strings;
2. both numbers: equal with relative tolerance 1e-4, also against gold/100 and gold*100;
3. string equality after dropping brackets and braces (case-insensitive);
4. tuples/intervals and ``pmatrix`` matrices element by element;
5. equations (``a=b`` against ``c=d`` up to sign, or ``x=5`` against ``5``);
6. symbolic equality with sympy (parse, ``equals``/``simplify``, numeric value, matrices).

Steps 1-2 run in-process. Whatever they leave open runs in a separate worker process
under a hard time limit (the harness gives each comparison 3 s): sympy can spin for
minutes or exhaust memory on adversarial input, and only killing a process stops it
reliably, from any thread. A timed-out comparison counts as wrong and is logged and
counted (:func:`timeout_count`).

The harness parses LaTeX with sympy's ANTLR parser and latex2sympy, neither of which we
ship; :func:`latex_to_sympy` is our own small LaTeX reader for the answer forms MATH uses.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rhocluster.evaluation.answers import extract_answer
from rhocluster.evaluation.benchmarks import MULTIPLE_CHOICE, check_benchmark

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3.0  # the harness' per-comparison limit (pebble ProcessPool timeout=3)
TIMEOUT_ENV = "RHO1_GRADE_TIMEOUT_S"  # overrides DEFAULT_TIMEOUT_S for the lm-eval tasks
REL_TOL = 1e-4
_WORKER_START_TIMEOUT_S = 120.0  # importing sympy on a loaded 2-core machine can be slow
_WORKER_MEMORY_BYTES = 4 << 30  # a runaway integer power must not take the machine down


@dataclass(frozen=True)
class Verdict:
    """Outcome of grading one completion."""

    answer: str  # the extracted, normalised answer
    correct: bool
    timed_out: bool  # the symbolic check hit the time limit (then correct is False)


# --------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------


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


def _quick_verdict(pred: str, gold: str) -> bool | None:
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


# --------------------------------------------------------------------------------------
# LaTeX -> sympy
# --------------------------------------------------------------------------------------

_GREEK = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
    "rho varrho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma "
    "Upsilon Phi Psi Omega"
).split()
_FUNCTIONS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "ln": "log", "log": "log", "exp": "exp",
}
_OPERATORS = {
    "cdot": "*", "times": "*", "ast": "*", "div": "/", "le": "<=", "leq": "<=", "ge": ">=",
    "geq": ">=", "lt": "<", "gt": ">", "neq": "!=", "ne": "!=", "pi": " pi ", "infty": " oo ",
    "%": "/100", "{": "(", "}": ")", "$": "", "circ": "", "degree": "", "prime": "'",
}
_IGNORED = {
    "left", "right", "displaystyle", "textstyle", ",", ";", ":", "!", " ", "quad", "qquad",
    "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
}
_TEXT_COMMANDS = {"text", "textbf", "textit", "mathrm", "mathbf", "mathit", "operatorname", "mbox", "boldsymbol"}
_COMMAND_NAME = re.compile(r"[A-Za-z]+")
_UNSAFE = re.compile(r"__|[A-Za-z_]\s*\.|\b(?:lambda|import|exec|eval|open|globals|locals|getattr)\b")


class _LatexReader:
    """Recursive-descent translation of a LaTeX math answer into a sympy-parsable string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def read(self) -> str:
        return self._sequence(close=None)

    def _sequence(self, close: str | None) -> str:
        parts: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if close is not None and char == close:
                self.pos += 1
                return "".join(parts)
            if char == "\\":
                parts.append(self._command())
            elif char == "{":
                self.pos += 1
                parts.append("(" + self._sequence("}") + ")")
            elif char == "}":
                raise ValueError("unbalanced '}'")
            elif char == "^":
                self.pos += 1
                parts.append("**" + self._argument())
            elif char == "_":
                self.pos += 1
                # subscripts become part of the symbol name: x_{1} -> x_1
                parts.append("_" + re.sub(r"\W", "", self._argument()))
            else:
                parts.append(char)
                self.pos += 1
        if close is not None:
            raise ValueError(f"missing {close!r}")
        return "".join(parts)

    def _skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def _argument(self) -> str:
        """One macro argument: a braced group, a command, or a single character."""
        self._skip_spaces()
        if self.pos >= len(self.text):
            raise ValueError("missing argument")
        char = self.text[self.pos]
        if char == "{":
            self.pos += 1
            return "(" + self._sequence("}") + ")"
        if char == "\\":
            return "(" + self._command() + ")"
        self.pos += 1
        return "(" + char + ")"

    def _optional(self) -> str | None:
        self._skip_spaces()
        if self.pos < len(self.text) and self.text[self.pos] == "[":
            self.pos += 1
            return self._sequence("]")
        return None

    def _command(self) -> str:
        self.pos += 1  # the backslash
        match = _COMMAND_NAME.match(self.text, self.pos)
        if match:
            name = match.group(0)
            self.pos = match.end()
        elif self.pos < len(self.text):
            name = self.text[self.pos]
            self.pos += 1
        else:
            raise ValueError("dangling backslash")
        if name in ("frac", "dfrac", "tfrac", "cfrac"):
            num, den = self._argument(), self._argument()
            return f"(({num})/({den}))"
        if name in ("binom", "dbinom", "tbinom"):
            top, bottom = self._argument(), self._argument()
            return f"binomial({top},{bottom})"
        if name == "sqrt":
            index = self._optional()
            body = self._argument()
            return f"sqrt({body})" if index is None else f"(({body})**(1/({index})))"
        if name in _TEXT_COMMANDS:
            return self._argument()
        if name in _FUNCTIONS:
            return f" {_FUNCTIONS[name]}"
        if name in _OPERATORS:
            return _OPERATORS[name]
        if name in _IGNORED:
            return ""
        if name in _GREEK:
            return f" {name} "
        raise ValueError(f"unsupported LaTeX command \\{name}")


def _sympy_namespace() -> dict[str, Any]:
    import sympy

    # single letters and Greek names are plain symbols (sympy would read E, I, S, N, Q or
    # gamma/zeta as constants and functions), as the harness' LaTeX parser reads them
    names = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    return {name: sympy.Symbol(name) for name in names + _GREEK}


_NAMESPACE: dict[str, Any] | None = None


def latex_to_sympy(text: str) -> Any:
    """Parse a LaTeX (or plain) math answer into a sympy object; raise ValueError if unable.

    One top-level ``=`` gives an unevaluated ``Eq``; commas give a tuple.
    """
    from sympy import Eq
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    global _NAMESPACE
    if _NAMESPACE is None:
        _NAMESPACE = _sympy_namespace()
    source = text.replace("\\lvert", "|").replace("\\rvert", "|").replace("\\vert", "|").replace("\\|", "|")
    expr = _LatexReader(source).read()
    for _ in range(3):  # |x| -> Abs(x), innermost first
        expr = re.sub(r"\|([^|]*)\|", r"Abs(\1)", expr)
    if "|" in expr or _UNSAFE.search(expr):
        raise ValueError(f"cannot parse {text!r}")
    transformations = standard_transformations + (implicit_multiplication_application, convert_xor)

    def parse(piece: str) -> Any:
        try:
            return parse_expr(piece, local_dict=dict(_NAMESPACE), transformations=transformations)
        except Exception as exc:  # noqa: BLE001 - parse_expr raises anything from SyntaxError to TypeError
            raise ValueError(f"cannot parse {text!r}: {exc}") from exc

    # The harness' ANTLR LaTeX grammar has no end-of-input rule: it reads the longest valid
    # prefix and drops the rest, so "1,-2" reads as 1. Kept for verdict parity (MATH item 25).
    expr = _before_top_level_comma(expr)
    sides = expr.split("=")
    if len(sides) == 2 and not sides[0].endswith(("<", ">", "!")) and not sides[1].startswith("="):
        return Eq(parse(sides[0]), parse(sides[1]), evaluate=False)
    return parse(expr)


def _before_top_level_comma(expr: str) -> str:
    depth = 0
    for index, char in enumerate(expr):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0 and index > 0:
            return expr[:index]
    return expr


def _parse_math(text: str) -> Any:
    """sympy object for ``text``, or ``text`` itself when it cannot be parsed (as the harness)."""
    for candidate in (text.replace("\\\\", "\\"), text):
        try:
            return latex_to_sympy(candidate)
        except (ValueError, RecursionError, MemoryError, OverflowError):
            continue
    return text


def symbolic_equal(a: str, b: str) -> bool:
    """sympy equality of two answers: structural, ``equals``/``simplify``, equations, value, matrices."""
    import sympy

    x, y = _parse_math(a), _parse_math(b)
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


# --------------------------------------------------------------------------------------
# The harness' math_equal
# --------------------------------------------------------------------------------------

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
    quick = _quick_verdict(str(pred), str(gold))
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


# --------------------------------------------------------------------------------------
# Time-limited execution in a worker process
# --------------------------------------------------------------------------------------


class _Worker:
    """A persistent ``python -m rhocluster.evaluation.grading --worker`` child.

    Requests are JSON lines on its stdin, answers JSON lines on its stdout. A request that
    overruns its time limit gets the child killed; the next request starts a fresh one.
    One lock serialises requests, so any thread may call :meth:`compare`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        proc = subprocess.Popen(
            [sys.executable, "-m", "rhocluster.evaluation.grading", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._proc, self._buffer = proc, b""
        if self._read_line(_WORKER_START_TIMEOUT_S) != {"ready": True}:
            self.stop()
            raise RuntimeError("sympy grading worker failed to start")
        return proc

    def _read_line(self, timeout_s: float) -> dict[str, Any] | None:
        """Next JSON line from the child, or None on timeout or exit."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None  # the child died (e.g. its memory limit)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def compare(self, pred: str, gold: str, timeout_s: float) -> bool | None:
        """``math_equal(pred, gold)`` in the child; None when it overran ``timeout_s``."""
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps({"pred": pred, "gold": gold}).encode() + b"\n")
                proc.stdin.flush()
            except BrokenPipeError:
                self.stop()
                return None
            reply = self._read_line(timeout_s)
            if reply is None:
                self.stop()
                return None
            return bool(reply["equal"])


_WORKER = _Worker()
atexit.register(_WORKER.stop)
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
    quick = _quick_verdict(pred, gold)
    if quick is not None:
        return quick, False
    result = _WORKER.compare(pred, gold, timeout_s)
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


def _serve() -> None:
    """Worker loop: one JSON request per stdin line, one JSON answer per stdout line."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # stray prints from sympy must not corrupt the protocol
    import sympy  # noqa: F401 - pay the import before announcing readiness

    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            equal = math_equal(request["pred"], request["gold"])
        except Exception:  # noqa: BLE001 - any failure means "not shown equal", as in the harness
            equal = False
        out.write(json.dumps({"equal": bool(equal)}) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _serve()
