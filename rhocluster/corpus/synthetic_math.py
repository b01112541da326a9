"""Generated math problems (a question, reasoning steps and a computed answer) and the text formats
they are written in: the evaluation prompts' formats plus looser web variants.

Word problems (:data:`WORD_PROBLEMS`) and algebra exercises (:data:`ALGEBRA`) are functions of a
``random.Random``; answers are computed, never looked up.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from rhocluster.corpus.synthetic_words import (
    ACTIVITIES,
    BAKED,
    COUNTABLES,
    FRUITS,
    GOODS,
    GROUPS,
    ITEMS,
    PLACES_RECT,
    VEHICLES,
    cap,
    person,
    signed,
    two_people,
)


@dataclass(frozen=True)
class Problem:
    """A generated problem: question, reasoning steps and its answer in plain and LaTeX form."""

    question: str
    steps: tuple[str, ...]
    answer: str  # plain form, as in "The answer is 5/6."
    answer_tex: str  # LaTeX form, as in "\boxed{\frac{5}{6}}"
    numeric: int | None  # integer answer, for multiple-choice distractors


def _p(question: str, steps: list[str], answer: int | Fraction) -> Problem:
    if isinstance(answer, Fraction) and answer.denominator != 1:
        return Problem(question, tuple(steps), f"{answer.numerator}/{answer.denominator}",
                        rf"\frac{{{answer.numerator}}}{{{answer.denominator}}}", None)
    value = int(answer)
    return Problem(question, tuple(steps), str(value), str(value), value)


def _wp_buy_each(r: random.Random) -> Problem:
    (n, s, _), (sg, pl, lo, hi) = person(r), r.choice(ITEMS)
    a, c = r.randint(2, 12), r.randint(lo, hi)
    q = r.choice([
        f"{n} buys {a} {pl} for ${c} each. How much money does {n} spend?",
        f"Each {sg} costs ${c}. How much do {a} {pl} cost?",
        f"{n} wants {a} {pl}. If one {sg} costs ${c}, how many dollars will {s} pay?",
    ])
    return _p(q, [f"{a} {pl} cost {a} * {c} = ${a * c}."], a * c)


def _wp_change(r: random.Random) -> Problem:
    (n, s, _), (sg, pl, lo, hi) = person(r), r.choice(ITEMS)
    a, c = r.randint(2, 8), r.randint(lo, hi)
    cost = a * c
    m = r.choice([x for x in (10, 20, 50, 100, 200) if x > cost] or [cost + r.randint(1, 50)])
    q = f"{n} has ${m}. {cap(s)} buys {a} {pl} that cost ${c} each. How much money does {n} have left?"
    return _p(q, [f"The {pl} cost {a} * {c} = ${cost}.", f"{n} has {m} - {cost} = ${m - cost} left."], m - cost)


def _wp_give_find(r: random.Random) -> Problem:
    (n, s, _), (n2, _, _) = two_people(r)
    obj = r.choice(COUNTABLES)
    x = r.randint(15, 90)
    y, z = r.randint(2, x - 3), r.randint(2, 30)
    q = (f"{n} has {x} {obj}. {cap(s)} gives {y} {obj} to {n2} and then "
         f"{r.choice(['finds', 'buys', 'gets', 'is given'])} {z} more. How many {obj} does {n} have now?")
    steps = [f"After giving away {y}, {n} has {x} - {y} = {x - y} {obj}.",
             f"Then {s} has {x - y} + {z} = {x - y + z} {obj}."]
    return _p(q, steps, x - y + z)


def _wp_share(r: random.Random) -> Problem:
    (n, s, _), obj = person(r), r.choice(COUNTABLES)
    k, each = r.randint(2, 9), r.randint(2, 15)
    t = k * each
    q = r.choice([
        f"{n} has {t} {obj} and shares them equally among {k} friends. How many {obj} does each friend get?",
        f"{t} {obj} are split equally into {k} bags. How many {obj} are in each bag?",
    ])
    return _p(q, [f"Each gets {t} / {k} = {each} {obj}."], each)


def _wp_speed(r: random.Random) -> Problem:
    v, sp, h = r.choice(VEHICLES), r.randint(3, 80), r.randint(2, 9)
    unit = r.choice(["miles", "kilometers"])
    q = f"A {v} travels at {sp} {unit} per hour for {h} hours. How many {unit} does it travel?"
    return _p(q, [f"Distance is speed times time, so it travels {sp} * {h} = {sp * h} {unit}."], sp * h)


def _wp_daily(r: random.Random) -> Problem:
    (n, s, _), (verb, base, unit) = person(r), r.choice(ACTIVITIES)
    a, d = r.randint(2, 40), r.randint(3, 14)
    if r.random() < 0.5:
        q = f"{n} {verb} {a} {unit} every day. How many {unit} does {s} {base} in {d} days?"
        return _p(q, [f"In {d} days {s} {verb} {a} * {d} = {a * d} {unit}."], a * d)
    w, d = r.randint(2, 4), r.randint(2, 7)
    q = f"{n} {verb} {a} {unit} each day, {d} days a week. How many {unit} is that in {w} weeks?"
    return _p(q, [f"In one week that is {a} * {d} = {a * d} {unit}.",
                  f"In {w} weeks it is {a * d} * {w} = {a * d * w} {unit}."], a * d * w)


def _wp_save(r: random.Random) -> Problem:
    (n, s, _), g = person(r), r.choice(GOODS)
    per, weeks = r.randint(3, 25), r.randint(3, 12)
    have = r.choice([0, 0, r.randint(5, 40)])
    cost = per * weeks + have
    if have:
        q = f"{n} wants a {g} that costs ${cost}. {cap(s)} already has ${have} and saves ${per} each week. How many weeks until {s} can buy it?"
        steps = [f"{n} still needs {cost} - {have} = ${cost - have}.", f"That takes {cost - have} / {per} = {weeks} weeks."]
    else:
        q = f"{n} saves ${per} each week to buy a {g} that costs ${cost}. How many weeks will it take?"
        steps = [f"It takes {cost} / {per} = {weeks} weeks."]
    return _p(q, steps, weeks)


def _wp_discount(r: random.Random) -> Problem:
    sg = r.choice(ITEMS)[0]
    price, pct = 20 * r.randint(1, 15), r.choice([10, 20, 25, 50, 5, 30, 40])
    off = price * pct // 100
    q = f"A {sg} costs ${price}. It is on sale for {pct}% off. What is the sale price in dollars?"
    steps = [f"The discount is {pct}% of {price}, which is {price} * {pct} / 100 = ${off}.",
             f"The sale price is {price} - {off} = ${price - off}."]
    return _p(q, steps, price - off)


def _wp_ages(r: random.Random) -> Problem:
    (n, _, _), (n2, _, _) = two_people(r)
    a, d, k = r.randint(4, 40), r.randint(2, 30), r.randint(2, 15)
    q = f"{n} is {a} years old. {n2} is {d} years older than {n}. How old will {n2} be in {k} years?"
    steps = [f"{n2} is {a} + {d} = {a + d} years old now.", f"In {k} years {n2} will be {a + d} + {k} = {a + d + k}."]
    return _p(q, steps, a + d + k)


def _wp_fraction_group(r: random.Random) -> Problem:
    members, group = r.choice(GROUPS)
    num, den = r.choice([(1, 2), (1, 3), (2, 3), (1, 4), (3, 4), (2, 5), (3, 5), (1, 6), (5, 6)])
    t = den * r.randint(3, 12)
    part = t * num // den
    kind, other = r.choice([("are girls", "boys"), ("wear glasses", "do not"), ("bring lunch from home", "do not"),
                            ("like tea", "do not")])
    q = (f"There are {t} {members} in a {group}. {num}/{den} of them {kind}. How many "
         + (f"{other} are there?" if other != "do not" else f"{members} do not?"))
    steps = [f"{num}/{den} of {t} is {t} / {den} * {num} = {part}.", f"So {t} - {part} = {t - part} {members} do not."]
    return _p(q, steps, t - part)


def _wp_times(r: random.Random) -> Problem:
    (n, _, _), (n2, _, _) = two_people(r)
    obj, a, k = r.choice(COUNTABLES), r.randint(3, 30), r.randint(2, 5)
    q = f"{n} has {a} {obj}. {n2} has {k} times as many {obj} as {n}. How many {obj} do they have together?"
    steps = [f"{n2} has {a} * {k} = {a * k} {obj}.", f"Together they have {a} + {a * k} = {a + a * k} {obj}."]
    return _p(q, steps, a + a * k)


def _wp_rect(r: random.Random) -> Problem:
    place, ln, w = r.choice(PLACES_RECT), r.randint(3, 30), r.randint(2, 20)
    if r.random() < 0.5:
        q = f"A rectangular {place} is {ln} meters long and {w} meters wide. What is its area in square meters?"
        return _p(q, [f"The area is length times width: {ln} * {w} = {ln * w} square meters."], ln * w)
    q = f"A rectangular {place} is {ln} meters long and {w} meters wide. What is its perimeter in meters?"
    return _p(q, [f"The perimeter is 2 * ({ln} + {w}) = 2 * {ln + w} = {2 * (ln + w)} meters."], 2 * (ln + w))


def _wp_two_items(r: random.Random) -> Problem:
    (n, s, _), (i1, i2) = person(r), r.sample(ITEMS, 2)
    a, b = r.randint(2, 7), r.randint(2, 7)
    p1, p2 = r.randint(i1[2], i1[3]), r.randint(i2[2], i2[3])
    q = f"{n} buys {a} {i1[1]} at ${p1} each and {b} {i2[1]} at ${p2} each. How much does {s} spend in total?"
    steps = [f"The {i1[1]} cost {a} * {p1} = ${a * p1}.", f"The {i2[1]} cost {b} * {p2} = ${b * p2}.",
             f"In total {s} spends {a * p1} + {b * p2} = ${a * p1 + b * p2}."]
    return _p(q, steps, a * p1 + b * p2)


def _wp_wage(r: random.Random) -> Problem:
    (n, s, _) = person(r)
    rate, h, d = r.randint(8, 30), r.randint(2, 9), r.randint(2, 6)
    q = f"{n} earns ${rate} per hour. {cap(s)} works {h} hours a day for {d} days. How much does {s} earn?"
    steps = [f"{cap(s)} works {h} * {d} = {h * d} hours.", f"{cap(s)} earns {h * d} * {rate} = ${h * d * rate}."]
    return _p(q, steps, h * d * rate)


def _wp_leftover(r: random.Random) -> Problem:
    (n, _, _), baked = person(r), r.choice(BAKED)
    k, full = r.randint(4, 12), r.randint(3, 12)
    rem = r.randint(1, k - 1)
    t = k * full + rem
    q = f"{n} bakes {t} {baked} and packs them in boxes of {k}. How many {baked} are left over after filling as many boxes as possible?"
    steps = [f"{full} full boxes hold {full} * {k} = {full * k} {baked}, and {full + 1} boxes would need {(full + 1) * k}.",
             f"So {t} - {full * k} = {rem} {baked} are left over."]
    return _p(q, steps, rem)


def _wp_fruit_total(r: random.Random) -> Problem:
    (n, s, _), (f1, f2) = person(r), r.sample(FRUITS, 2)
    a, b, e = r.randint(5, 40), r.randint(5, 40), r.randint(1, 4)
    q = f"{n} picks {a} {f1} and {b} {f2}. {cap(s)} eats {e} of the {f1}. How many pieces of fruit are left?"
    steps = [f"{n} picks {a} + {b} = {a + b} pieces of fruit.", f"After eating {e}, {a + b} - {e} = {a + b - e} are left."]
    return _p(q, steps, a + b - e)


WORD_PROBLEMS: tuple[Callable[[random.Random], Problem], ...] = (
    _wp_buy_each, _wp_change, _wp_give_find, _wp_share, _wp_speed, _wp_daily, _wp_save, _wp_discount,
    _wp_ages, _wp_fraction_group, _wp_times, _wp_rect, _wp_two_items, _wp_wage, _wp_leftover, _wp_fruit_total,
)


def _al_linear(r: random.Random) -> Problem:
    var = r.choice("xxxyntk")
    a, x = r.randint(2, 9), r.randint(-12, 15)
    b = r.choice([i for i in range(-20, 21) if i != 0])
    c = a * x + b
    move = f"Subtract ${b}$ from both sides" if b > 0 else f"Add ${-b}$ to both sides"
    q = r.choice([f"Solve for ${var}$: ${a}{var} {signed(b)} = {c}$.", f"What value of ${var}$ satisfies ${a}{var} {signed(b)} = {c}$?",
                  f"If ${a}{var} {signed(b)} = {c}$, what is ${var}$?"])
    steps = [f"{move} to get ${a}{var} = {c - b}$.", f"Dividing by ${a}$ gives ${var} = \\frac{{{c - b}}}{{{a}}} = {x}$."]
    return _p(q, steps, x)


def _al_bracket(r: random.Random) -> Problem:
    a, x, b = r.randint(2, 6), r.randint(-5, 12), r.randint(1, 9)
    c = a * (x + b)
    q = f"Solve ${a}(x + {b}) = {c}$ for $x$."
    steps = [f"Divide both sides by ${a}$: $x + {b} = {c // a}$.", f"Subtract ${b}$: $x = {c // a} - {b} = {x}$."]
    return _p(q, steps, x)


def _al_frac_add(r: random.Random) -> Problem:
    b, d = r.randint(2, 9), r.randint(2, 9)
    a, c = r.randint(1, b - 1 if b > 2 else 1), r.randint(1, d - 1 if d > 2 else 1)
    lcm = b * d // math.gcd(b, d)
    s = Fraction(a, b) + Fraction(c, d)
    q = f"Compute $\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}}$. Express your answer in lowest terms."
    na, nc = a * lcm // b, c * lcm // d
    steps = [f"The common denominator is ${lcm}$, so $\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}} = \\frac{{{na}}}{{{lcm}}} + \\frac{{{nc}}}{{{lcm}}} = \\frac{{{na + nc}}}{{{lcm}}}$."]
    if s.denominator != lcm:
        g = (na + nc) // s.numerator
        steps.append(f"Dividing top and bottom by ${g}$ gives " + (f"${s.numerator}$." if s.denominator == 1
                     else f"$\\frac{{{s.numerator}}}{{{s.denominator}}}$."))
    return _p(q, steps, s)


def _al_eval_poly(r: random.Random) -> Problem:
    a, b, c, k = r.randint(1, 5), r.choice([i for i in range(-9, 10) if i]), r.randint(-9, 9), r.randint(-4, 6)
    val = a * k * k + b * k + c
    f = f"{a if a > 1 else ''}x^2 {signed(b)}x {signed(c)}"
    q = f"If $f(x) = {f}$, what is $f({k})$?"
    steps = [f"Substitute $x = {k}$: $f({k}) = {a} \\cdot ({k})^2 {signed(b)} \\cdot ({k}) {signed(c)}$.",
             f"This is ${a * k * k} {signed(b * k)} {signed(c)} = {val}$."]
    return _p(q, steps, val)


def _al_arith_seq(r: random.Random) -> Problem:
    a, d, n = r.randint(-5, 20), r.randint(2, 9), r.randint(5, 30)
    terms = ", ".join(str(a + i * d) for i in range(4))
    q = f"What is the ${n}$th term of the arithmetic sequence ${terms}, \\ldots$?"
    steps = [f"The first term is ${a}$ and the common difference is ${d}$.",
             f"The ${n}$th term is ${a} + ({n} - 1) \\cdot {d} = {a} + {(n - 1) * d} = {a + (n - 1) * d}$."]
    return _p(q, steps, a + (n - 1) * d)


def _al_gcd(r: random.Random) -> Problem:
    g = r.randint(2, 15)
    x, y = r.sample(range(2, 13), 2)
    a, b = g * max(x, y), g * min(x, y)
    q = f"What is the greatest common divisor of ${a}$ and ${b}$?"
    steps, (u, v) = [], (a, b)
    while v:  # Euclid's algorithm, written out step by step
        steps.append(f"${u} = {u // v} \\cdot {v} + {u % v}$.")
        u, v = v, u % v
    steps.append(f"The last nonzero remainder is ${u}$, so $\\gcd({a}, {b}) = {u}$.")
    return _p(q, steps, u)


def _al_sum_n(r: random.Random) -> Problem:
    n = r.randint(5, 60)
    q = f"What is the value of $1 + 2 + 3 + \\cdots + {n}$?"
    steps = [f"The sum of the first $n$ positive integers is $\\frac{{n(n+1)}}{{2}}$.",
             f"With $n = {n}$ this is $\\frac{{{n} \\cdot {n + 1}}}{{2}} = {n * (n + 1) // 2}$."]
    return _p(q, steps, n * (n + 1) // 2)


def _al_percent(r: random.Random) -> Problem:
    p, n = r.choice([5, 10, 15, 20, 25, 30, 40, 50, 60, 75]), 20 * r.randint(1, 25)
    q = f"What is ${p}\\%$ of ${n}$?"
    steps = [f"${p}\\%$ of ${n}$ is $\\frac{{{p}}}{{100}} \\cdot {n} = {p * n // 100}$."]
    return _p(q, steps, p * n // 100)


def _al_system(r: random.Random) -> Problem:
    x, y = r.randint(1, 20), r.randint(-10, 15)
    q = f"If $x + y = {x + y}$ and $x - y = {x - y}$, what is the value of $x$?"
    steps = [f"Adding the two equations gives $2x = {2 * x}$.", f"So $x = \\frac{{{2 * x}}}{{2}} = {x}$."]
    return _p(q, steps, x)


def _al_pythagoras(r: random.Random) -> Problem:
    a, b, c = r.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25)])
    k = r.randint(1, 4)
    a, b, c = a * k, b * k, c * k
    q = f"A right triangle has legs of length ${a}$ and ${b}$. What is the length of the hypotenuse?"
    steps = [f"By the Pythagorean theorem, $c^2 = {a}^2 + {b}^2 = {a * a} + {b * b} = {c * c}$.", f"So $c = \\sqrt{{{c * c}}} = {c}$."]
    return _p(q, steps, c)


def _al_power(r: random.Random) -> Problem:
    base, m, n = r.choice([2, 2, 3, 5, 10]), r.randint(1, 4), r.randint(1, 4)
    q = f"Compute ${base}^{{{m}}} \\cdot {base}^{{{n}}}$."
    steps = [f"Adding exponents, ${base}^{{{m}}} \\cdot {base}^{{{n}}} = {base}^{{{m + n}}} = {base ** (m + n)}$."]
    return _p(q, steps, base ** (m + n))


def _al_mean(r: random.Random) -> Problem:
    k, mean = r.randint(3, 6), r.randint(5, 50)
    xs = [mean + r.randint(-8, 8) for _ in range(k - 1)]
    xs.append(mean * k - sum(xs))
    q = f"What is the mean of the numbers {', '.join(map(str, xs))}?"
    steps = [f"The sum is ${' + '.join(map(str, xs))} = {sum(xs)}$.", f"Dividing by ${k}$ gives $\\frac{{{sum(xs)}}}{{{k}}} = {mean}$."]
    return _p(q, steps, mean)


ALGEBRA: tuple[Callable[[random.Random], Problem], ...] = (
    _al_linear, _al_linear, _al_bracket, _al_frac_add, _al_eval_poly, _al_arith_seq, _al_gcd, _al_sum_n,
    _al_percent, _al_system, _al_pythagoras, _al_power, _al_mean,
)


# --------------------------------------------------------------------------------------
# Formats (the ones the evaluation prompts use, plus looser web variants)
# --------------------------------------------------------------------------------------


def fmt_gsm(p: Problem, r: random.Random) -> str:
    """GSM8K style: ``"Question: ...\\nAnswer: ... The answer is N."``."""
    return f"Question: {p.question}\nAnswer: {' '.join(p.steps)} The answer is {p.answer}."


def fmt_math(p: Problem, r: random.Random) -> str:
    """MATH style: ``"Problem:\\n...\\nSolution:\\n... \\boxed{N}"``."""
    end = r.choice([f"The answer is $\\boxed{{{p.answer_tex}}}$.", f"Therefore, the answer is $\\boxed{{{p.answer_tex}}}$.",
                    f"So the final answer is $\\boxed{{{p.answer_tex}}}$."])
    return f"Problem:\n{p.question}\nSolution:\n{' '.join(p.steps)} {end}"


def fmt_mc(p: Problem, r: random.Random) -> str:
    """Multiple choice (``p`` needs an integer answer): ``"Answer Choices: (A) ... The answer is (B)."``."""
    assert p.numeric is not None
    n_choices = r.choice([4, 5, 5])
    # The right answer's position is uniform, so the letter carries no information; the
    # distractors are near misses on either side of it, listed in increasing order.
    pos = r.randrange(n_choices)
    spread = max(3, abs(p.numeric) // 3 + 1)
    below = set(r.sample(range(p.numeric - spread - pos, p.numeric), pos))
    above = set(r.sample(range(p.numeric + 1, p.numeric + spread + n_choices), n_choices - 1 - pos))
    options = sorted(below | above | {p.numeric})
    letters = string.ascii_uppercase[:n_choices]
    choices = " ".join(f"({L}) {v}" for L, v in zip(letters, options))
    return f"Question: {p.question}\nAnswer Choices: {choices}\nAnswer: {' '.join(p.steps)} The answer is ({letters[pos]})."


def fmt_web(p: Problem, r: random.Random) -> str:
    """Looser layouts seen on tutoring sites and forums."""
    k = r.randint(1, 12)
    style = r.randrange(5)
    if style == 0:
        return f"Example {k}. {p.question}\nSolution. {' '.join(p.steps)} The answer is {p.answer}."
    if style == 1:
        return f"Q: {p.question}\nA: {' '.join(p.steps)} The answer is {p.answer}."
    if style == 2:
        return ("Can someone check my work on this one? " + p.question + "\n\n"
                + "\n".join(p.steps) + f"\nThe answer is {p.answer}.")
    if style == 3:
        return f"Exercise {k}: {p.question}\n" + "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(p.steps)) + f"\nThe answer is {p.answer}."
    return f"Problem {k}. {p.question}\nSolution: {' '.join(p.steps)} Hence the answer is $\\boxed{{{p.answer_tex}}}$."
