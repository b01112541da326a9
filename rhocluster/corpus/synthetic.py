"""Generated corpora for the offline tiny run: a noisy "math web", a clean problem set, a
generic pretraining mix, and the mapping of character-span labels onto tokens.

Every generator is a pure function of ``(n_docs, seed)``: document ``i`` is drawn from its
own ``random.Random`` seeded with a string naming the corpus, the seed and ``i`` (string
seeds are hashed with SHA-512, so results do not depend on ``PYTHONHASHSEED``), which also
makes the first ``k`` documents identical whatever ``n_docs`` is.

The math content is templated but compositional (many names, objects, numbers, phrasings;
answers are computed, never looked up) so that a small LM has to learn the patterns the
evaluation uses ("Question: ...\\nAnswer: ... The answer is N.", "Problem:\\n...\\nSolution:\\n
... \\boxed{N}", "Answer Choices: (A) ... The answer is (B).") rather than memorise strings.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rhocluster.corpus.labels import FOOTER, JUNK, MATH, NAVIGATION, NO_LABEL, PROSE

__all__ = ["generate_math_web", "generate_hq_math", "generate_pretrain", "label_token_spans"]

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

_NAMES_F = (
    "Olivia Emma Ava Sophia Mia Amelia Harper Lily Zoe Nora Chloe Grace Ella Aria Maya Ruby Leah Hannah "
    "Sara Nina Priya Aisha Mei Yuki Fatima Elena Lucia Ingrid Chiara Amara Keiko Rosa Tara Jasmine Ivy Wendy "
    "Carmen Beth Janet Paula"
).split()
_NAMES_M = (
    "Liam Noah Oliver James Lucas Henry Mason Ethan Jack Owen Leo Ryan Adam Omar Ravi Kenji Diego Mateo "
    "Luca Hugo Felix Samuel Tom Ben Carlos Ahmed Wei Jamal Ivan Marco Pedro Arjun Dylan Gabe Nathan Victor "
    "Paul Frank Jose Kofi"
).split()
_SURNAMES = (
    "Smith Garcia Chen Patel Okafor Novak Rossi Kim Silva Müller Johnson Brown Lopez Nguyen Tanaka Haddad "
    "Kowalski Dubois Larsen Moreau Reyes Fischer Ortiz Walsh Becker Sato Mensah Costa Hughes Park"
).split()

# (singular, plural, min price, max price) for shopping problems.
_ITEMS = (
    ("pencil", "pencils", 1, 3), ("notebook", "notebooks", 2, 6), ("apple", "apples", 1, 2),
    ("book", "books", 5, 20), ("shirt", "shirts", 8, 25), ("toy car", "toy cars", 3, 12),
    ("cupcake", "cupcakes", 2, 5), ("ticket", "tickets", 6, 30), ("plant", "plants", 4, 15),
    ("bag of rice", "bags of rice", 3, 9), ("sandwich", "sandwiches", 4, 9), ("puzzle", "puzzles", 7, 18),
    ("pair of socks", "pairs of socks", 2, 7), ("candle", "candles", 3, 10), ("mug", "mugs", 4, 11),
    ("board game", "board games", 12, 40), ("box of crayons", "boxes of crayons", 2, 6),
    ("bottle of juice", "bottles of juice", 1, 4), ("comic book", "comic books", 3, 8),
    ("basketball", "basketballs", 10, 30),
)
_COUNTABLES = (
    "marbles stickers cookies stamps seashells coins cards balloons crayons beads shells buttons "
    "strawberries eggs pebbles postcards keychains ribbons"
).split()
_FRUITS = "apples oranges pears peaches plums lemons mangoes bananas".split()
_PLACES_RECT = ("garden", "room", "field", "playground", "parking lot", "classroom", "pool", "yard", "kitchen floor")
_VEHICLES = ("car", "train", "bus", "cyclist", "truck", "boat", "plane", "runner")
_GOODS = ("bike", "video game", "guitar", "tablet", "skateboard", "telescope", "camera", "tent", "scooter")
_ACTIVITIES = (  # (verb, base form, unit)
    ("reads", "read", "pages"), ("runs", "run", "miles"), ("swims", "swim", "laps"), ("bakes", "bake", "cookies"),
    ("writes", "write", "emails"), ("plants", "plant", "flowers"), ("folds", "fold", "paper cranes"),
    ("practices piano for", "practice", "minutes"), ("collects", "collect", "stamps"),
)
_BAKED = ("muffins", "cookies", "bagels", "donuts", "rolls", "cupcakes", "pies")
_GROUPS = (("students", "class"), ("players", "club"), ("people", "choir"), ("workers", "factory"), ("campers", "camp"))

_CITIES = (
    "Springfield", "Riverton", "Lakeside", "Fairview", "Brookhaven", "Maplewood", "Kingsport", "Westbury", "Ashford",
    "Millbrook", "Northgate", "Pinecrest", "Harbor City", "Eastwood", "Stonebridge", "Oakdale",
)
_TEAMS = "Hawks Tigers Rovers Comets Wolves Falcons Pirates Titans Rangers Bears Sharks Dragons Lions Storm".split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_MONTHS = "January February March April May June July August September October November December".split()
_DISHES = (
    "banana bread", "lemon drizzle cake", "vegetable soup", "chicken curry", "apple crumble", "pancakes",
    "tomato pasta", "chocolate brownies", "potato salad", "mushroom risotto", "beef stew", "carrot cake",
)
_INGREDIENTS = (
    "flour", "sugar", "butter", "milk", "rice", "chopped onions", "grated cheese", "olive oil", "brown sugar",
    "oats", "diced tomatoes", "cocoa powder", "vegetable stock", "cream", "honey", "garlic",
)
_VENUES = ("a rooftop bar", "the airport", "a charity gala", "a film premiere", "a beach in Malibu",
           "a coffee shop", "a fashion show", "a music festival", "a private island", "a sold-out concert")
_TOPICS = ("algebra", "fractions", "geometry", "percentages", "word problems", "equations", "number theory",
           "arithmetic", "statistics", "sequences", "pre-algebra", "homework help")


def _person(r: random.Random) -> tuple[str, str, str]:
    """A first name with its subject and possessive pronouns."""
    if r.random() < 0.5:
        return r.choice(_NAMES_F), "she", "her"
    return r.choice(_NAMES_M), "he", "his"


def _two_people(r: random.Random) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    a = _person(r)
    b = _person(r)
    while b[0] == a[0]:
        b = _person(r)
    return a, b


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _signed(n: int) -> str:
    """'+ 3' / '- 3' for writing a term after another one."""
    return f"+ {n}" if n >= 0 else f"- {-n}"


# --------------------------------------------------------------------------------------
# Problems: question, reasoning steps and a computed answer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    question: str
    steps: tuple[str, ...]
    answer: str  # plain form, as in "The answer is 5/6."
    answer_tex: str  # LaTeX form, as in "\boxed{\frac{5}{6}}"
    numeric: int | None  # integer answer, for multiple-choice distractors


def _p(question: str, steps: list[str], answer: int | Fraction) -> _Problem:
    if isinstance(answer, Fraction) and answer.denominator != 1:
        return _Problem(question, tuple(steps), f"{answer.numerator}/{answer.denominator}",
                        rf"\frac{{{answer.numerator}}}{{{answer.denominator}}}", None)
    value = int(answer)
    return _Problem(question, tuple(steps), str(value), str(value), value)


def _wp_buy_each(r: random.Random) -> _Problem:
    (n, s, _), (sg, pl, lo, hi) = _person(r), r.choice(_ITEMS)
    a, c = r.randint(2, 12), r.randint(lo, hi)
    q = r.choice([
        f"{n} buys {a} {pl} for ${c} each. How much money does {n} spend?",
        f"Each {sg} costs ${c}. How much do {a} {pl} cost?",
        f"{n} wants {a} {pl}. If one {sg} costs ${c}, how many dollars will {s} pay?",
    ])
    return _p(q, [f"{a} {pl} cost {a} * {c} = ${a * c}."], a * c)


def _wp_change(r: random.Random) -> _Problem:
    (n, s, _), (sg, pl, lo, hi) = _person(r), r.choice(_ITEMS)
    a, c = r.randint(2, 8), r.randint(lo, hi)
    cost = a * c
    m = r.choice([x for x in (10, 20, 50, 100, 200) if x > cost] or [cost + r.randint(1, 50)])
    q = f"{n} has ${m}. {_cap(s)} buys {a} {pl} that cost ${c} each. How much money does {n} have left?"
    return _p(q, [f"The {pl} cost {a} * {c} = ${cost}.", f"{n} has {m} - {cost} = ${m - cost} left."], m - cost)


def _wp_give_find(r: random.Random) -> _Problem:
    (n, s, _), (n2, _, _) = _two_people(r)
    obj = r.choice(_COUNTABLES)
    x = r.randint(15, 90)
    y, z = r.randint(2, x - 3), r.randint(2, 30)
    q = (f"{n} has {x} {obj}. {_cap(s)} gives {y} {obj} to {n2} and then "
         f"{r.choice(['finds', 'buys', 'gets', 'is given'])} {z} more. How many {obj} does {n} have now?")
    steps = [f"After giving away {y}, {n} has {x} - {y} = {x - y} {obj}.",
             f"Then {s} has {x - y} + {z} = {x - y + z} {obj}."]
    return _p(q, steps, x - y + z)


def _wp_share(r: random.Random) -> _Problem:
    (n, s, _), obj = _person(r), r.choice(_COUNTABLES)
    k, each = r.randint(2, 9), r.randint(2, 15)
    t = k * each
    q = r.choice([
        f"{n} has {t} {obj} and shares them equally among {k} friends. How many {obj} does each friend get?",
        f"{t} {obj} are split equally into {k} bags. How many {obj} are in each bag?",
    ])
    return _p(q, [f"Each gets {t} / {k} = {each} {obj}."], each)


def _wp_speed(r: random.Random) -> _Problem:
    v, sp, h = r.choice(_VEHICLES), r.randint(3, 80), r.randint(2, 9)
    unit = r.choice(["miles", "kilometers"])
    q = f"A {v} travels at {sp} {unit} per hour for {h} hours. How many {unit} does it travel?"
    return _p(q, [f"Distance is speed times time, so it travels {sp} * {h} = {sp * h} {unit}."], sp * h)


def _wp_daily(r: random.Random) -> _Problem:
    (n, s, _), (verb, base, unit) = _person(r), r.choice(_ACTIVITIES)
    a, d = r.randint(2, 40), r.randint(3, 14)
    if r.random() < 0.5:
        q = f"{n} {verb} {a} {unit} every day. How many {unit} does {s} {base} in {d} days?"
        return _p(q, [f"In {d} days {s} {verb} {a} * {d} = {a * d} {unit}."], a * d)
    w, d = r.randint(2, 4), r.randint(2, 7)
    q = f"{n} {verb} {a} {unit} each day, {d} days a week. How many {unit} is that in {w} weeks?"
    return _p(q, [f"In one week that is {a} * {d} = {a * d} {unit}.",
                  f"In {w} weeks it is {a * d} * {w} = {a * d * w} {unit}."], a * d * w)


def _wp_save(r: random.Random) -> _Problem:
    (n, s, _), g = _person(r), r.choice(_GOODS)
    per, weeks = r.randint(3, 25), r.randint(3, 12)
    have = r.choice([0, 0, r.randint(5, 40)])
    cost = per * weeks + have
    if have:
        q = f"{n} wants a {g} that costs ${cost}. {_cap(s)} already has ${have} and saves ${per} each week. How many weeks until {s} can buy it?"
        steps = [f"{n} still needs {cost} - {have} = ${cost - have}.", f"That takes {cost - have} / {per} = {weeks} weeks."]
    else:
        q = f"{n} saves ${per} each week to buy a {g} that costs ${cost}. How many weeks will it take?"
        steps = [f"It takes {cost} / {per} = {weeks} weeks."]
    return _p(q, steps, weeks)


def _wp_discount(r: random.Random) -> _Problem:
    sg = r.choice(_ITEMS)[0]
    price, pct = 20 * r.randint(1, 15), r.choice([10, 20, 25, 50, 5, 30, 40])
    off = price * pct // 100
    q = f"A {sg} costs ${price}. It is on sale for {pct}% off. What is the sale price in dollars?"
    steps = [f"The discount is {pct}% of {price}, which is {price} * {pct} / 100 = ${off}.",
             f"The sale price is {price} - {off} = ${price - off}."]
    return _p(q, steps, price - off)


def _wp_ages(r: random.Random) -> _Problem:
    (n, _, _), (n2, _, _) = _two_people(r)
    a, d, k = r.randint(4, 40), r.randint(2, 30), r.randint(2, 15)
    q = f"{n} is {a} years old. {n2} is {d} years older than {n}. How old will {n2} be in {k} years?"
    steps = [f"{n2} is {a} + {d} = {a + d} years old now.", f"In {k} years {n2} will be {a + d} + {k} = {a + d + k}."]
    return _p(q, steps, a + d + k)


def _wp_fraction_group(r: random.Random) -> _Problem:
    members, group = r.choice(_GROUPS)
    num, den = r.choice([(1, 2), (1, 3), (2, 3), (1, 4), (3, 4), (2, 5), (3, 5), (1, 6), (5, 6)])
    t = den * r.randint(3, 12)
    part = t * num // den
    kind, other = r.choice([("are girls", "boys"), ("wear glasses", "do not"), ("bring lunch from home", "do not"),
                            ("like tea", "do not")])
    q = (f"There are {t} {members} in a {group}. {num}/{den} of them {kind}. How many "
         + (f"{other} are there?" if other != "do not" else f"{members} do not?"))
    steps = [f"{num}/{den} of {t} is {t} / {den} * {num} = {part}.", f"So {t} - {part} = {t - part} {members} do not."]
    return _p(q, steps, t - part)


def _wp_times(r: random.Random) -> _Problem:
    (n, _, _), (n2, _, _) = _two_people(r)
    obj, a, k = r.choice(_COUNTABLES), r.randint(3, 30), r.randint(2, 5)
    q = f"{n} has {a} {obj}. {n2} has {k} times as many {obj} as {n}. How many {obj} do they have together?"
    steps = [f"{n2} has {a} * {k} = {a * k} {obj}.", f"Together they have {a} + {a * k} = {a + a * k} {obj}."]
    return _p(q, steps, a + a * k)


def _wp_rect(r: random.Random) -> _Problem:
    place, ln, w = r.choice(_PLACES_RECT), r.randint(3, 30), r.randint(2, 20)
    if r.random() < 0.5:
        q = f"A rectangular {place} is {ln} meters long and {w} meters wide. What is its area in square meters?"
        return _p(q, [f"The area is length times width: {ln} * {w} = {ln * w} square meters."], ln * w)
    q = f"A rectangular {place} is {ln} meters long and {w} meters wide. What is its perimeter in meters?"
    return _p(q, [f"The perimeter is 2 * ({ln} + {w}) = 2 * {ln + w} = {2 * (ln + w)} meters."], 2 * (ln + w))


def _wp_two_items(r: random.Random) -> _Problem:
    (n, s, _), (i1, i2) = _person(r), r.sample(_ITEMS, 2)
    a, b = r.randint(2, 7), r.randint(2, 7)
    p1, p2 = r.randint(i1[2], i1[3]), r.randint(i2[2], i2[3])
    q = f"{n} buys {a} {i1[1]} at ${p1} each and {b} {i2[1]} at ${p2} each. How much does {s} spend in total?"
    steps = [f"The {i1[1]} cost {a} * {p1} = ${a * p1}.", f"The {i2[1]} cost {b} * {p2} = ${b * p2}.",
             f"In total {s} spends {a * p1} + {b * p2} = ${a * p1 + b * p2}."]
    return _p(q, steps, a * p1 + b * p2)


def _wp_wage(r: random.Random) -> _Problem:
    (n, s, _) = _person(r)
    rate, h, d = r.randint(8, 30), r.randint(2, 9), r.randint(2, 6)
    q = f"{n} earns ${rate} per hour. {_cap(s)} works {h} hours a day for {d} days. How much does {s} earn?"
    steps = [f"{_cap(s)} works {h} * {d} = {h * d} hours.", f"{_cap(s)} earns {h * d} * {rate} = ${h * d * rate}."]
    return _p(q, steps, h * d * rate)


def _wp_leftover(r: random.Random) -> _Problem:
    (n, _, _), baked = _person(r), r.choice(_BAKED)
    k, full = r.randint(4, 12), r.randint(3, 12)
    rem = r.randint(1, k - 1)
    t = k * full + rem
    q = f"{n} bakes {t} {baked} and packs them in boxes of {k}. How many {baked} are left over after filling as many boxes as possible?"
    steps = [f"{full} full boxes hold {full} * {k} = {full * k} {baked}, and {full + 1} boxes would need {(full + 1) * k}.",
             f"So {t} - {full * k} = {rem} {baked} are left over."]
    return _p(q, steps, rem)


def _wp_fruit_total(r: random.Random) -> _Problem:
    (n, s, _), (f1, f2) = _person(r), r.sample(_FRUITS, 2)
    a, b, e = r.randint(5, 40), r.randint(5, 40), r.randint(1, 4)
    q = f"{n} picks {a} {f1} and {b} {f2}. {_cap(s)} eats {e} of the {f1}. How many pieces of fruit are left?"
    steps = [f"{n} picks {a} + {b} = {a + b} pieces of fruit.", f"After eating {e}, {a + b} - {e} = {a + b - e} are left."]
    return _p(q, steps, a + b - e)


_WORD_PROBLEMS: tuple[Callable[[random.Random], _Problem], ...] = (
    _wp_buy_each, _wp_change, _wp_give_find, _wp_share, _wp_speed, _wp_daily, _wp_save, _wp_discount,
    _wp_ages, _wp_fraction_group, _wp_times, _wp_rect, _wp_two_items, _wp_wage, _wp_leftover, _wp_fruit_total,
)


def _al_linear(r: random.Random) -> _Problem:
    var = r.choice("xxxyntk")
    a, x = r.randint(2, 9), r.randint(-12, 15)
    b = r.choice([i for i in range(-20, 21) if i != 0])
    c = a * x + b
    move = f"Subtract ${b}$ from both sides" if b > 0 else f"Add ${-b}$ to both sides"
    q = r.choice([f"Solve for ${var}$: ${a}{var} {_signed(b)} = {c}$.", f"What value of ${var}$ satisfies ${a}{var} {_signed(b)} = {c}$?",
                  f"If ${a}{var} {_signed(b)} = {c}$, what is ${var}$?"])
    steps = [f"{move} to get ${a}{var} = {c - b}$.", f"Dividing by ${a}$ gives ${var} = \\frac{{{c - b}}}{{{a}}} = {x}$."]
    return _p(q, steps, x)


def _al_bracket(r: random.Random) -> _Problem:
    a, x, b = r.randint(2, 6), r.randint(-5, 12), r.randint(1, 9)
    c = a * (x + b)
    q = f"Solve ${a}(x + {b}) = {c}$ for $x$."
    steps = [f"Divide both sides by ${a}$: $x + {b} = {c // a}$.", f"Subtract ${b}$: $x = {c // a} - {b} = {x}$."]
    return _p(q, steps, x)


def _al_frac_add(r: random.Random) -> _Problem:
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


def _al_eval_poly(r: random.Random) -> _Problem:
    a, b, c, k = r.randint(1, 5), r.choice([i for i in range(-9, 10) if i]), r.randint(-9, 9), r.randint(-4, 6)
    val = a * k * k + b * k + c
    f = f"{a if a > 1 else ''}x^2 {_signed(b)}x {_signed(c)}"
    q = f"If $f(x) = {f}$, what is $f({k})$?"
    steps = [f"Substitute $x = {k}$: $f({k}) = {a} \\cdot ({k})^2 {_signed(b)} \\cdot ({k}) {_signed(c)}$.",
             f"This is ${a * k * k} {_signed(b * k)} {_signed(c)} = {val}$."]
    return _p(q, steps, val)


def _al_arith_seq(r: random.Random) -> _Problem:
    a, d, n = r.randint(-5, 20), r.randint(2, 9), r.randint(5, 30)
    terms = ", ".join(str(a + i * d) for i in range(4))
    q = f"What is the ${n}$th term of the arithmetic sequence ${terms}, \\ldots$?"
    steps = [f"The first term is ${a}$ and the common difference is ${d}$.",
             f"The ${n}$th term is ${a} + ({n} - 1) \\cdot {d} = {a} + {(n - 1) * d} = {a + (n - 1) * d}$."]
    return _p(q, steps, a + (n - 1) * d)


def _al_gcd(r: random.Random) -> _Problem:
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


def _al_sum_n(r: random.Random) -> _Problem:
    n = r.randint(5, 60)
    q = f"What is the value of $1 + 2 + 3 + \\cdots + {n}$?"
    steps = [f"The sum of the first $n$ positive integers is $\\frac{{n(n+1)}}{{2}}$.",
             f"With $n = {n}$ this is $\\frac{{{n} \\cdot {n + 1}}}{{2}} = {n * (n + 1) // 2}$."]
    return _p(q, steps, n * (n + 1) // 2)


def _al_percent(r: random.Random) -> _Problem:
    p, n = r.choice([5, 10, 15, 20, 25, 30, 40, 50, 60, 75]), 20 * r.randint(1, 25)
    q = f"What is ${p}\\%$ of ${n}$?"
    steps = [f"${p}\\%$ of ${n}$ is $\\frac{{{p}}}{{100}} \\cdot {n} = {p * n // 100}$."]
    return _p(q, steps, p * n // 100)


def _al_system(r: random.Random) -> _Problem:
    x, y = r.randint(1, 20), r.randint(-10, 15)
    q = f"If $x + y = {x + y}$ and $x - y = {x - y}$, what is the value of $x$?"
    steps = [f"Adding the two equations gives $2x = {2 * x}$.", f"So $x = \\frac{{{2 * x}}}{{2}} = {x}$."]
    return _p(q, steps, x)


def _al_pythagoras(r: random.Random) -> _Problem:
    a, b, c = r.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25)])
    k = r.randint(1, 4)
    a, b, c = a * k, b * k, c * k
    q = f"A right triangle has legs of length ${a}$ and ${b}$. What is the length of the hypotenuse?"
    steps = [f"By the Pythagorean theorem, $c^2 = {a}^2 + {b}^2 = {a * a} + {b * b} = {c * c}$.", f"So $c = \\sqrt{{{c * c}}} = {c}$."]
    return _p(q, steps, c)


def _al_power(r: random.Random) -> _Problem:
    base, m, n = r.choice([2, 2, 3, 5, 10]), r.randint(1, 4), r.randint(1, 4)
    q = f"Compute ${base}^{{{m}}} \\cdot {base}^{{{n}}}$."
    steps = [f"Adding exponents, ${base}^{{{m}}} \\cdot {base}^{{{n}}} = {base}^{{{m + n}}} = {base ** (m + n)}$."]
    return _p(q, steps, base ** (m + n))


def _al_mean(r: random.Random) -> _Problem:
    k, mean = r.randint(3, 6), r.randint(5, 50)
    xs = [mean + r.randint(-8, 8) for _ in range(k - 1)]
    xs.append(mean * k - sum(xs))
    q = f"What is the mean of the numbers {', '.join(map(str, xs))}?"
    steps = [f"The sum is ${' + '.join(map(str, xs))} = {sum(xs)}$.", f"Dividing by ${k}$ gives $\\frac{{{sum(xs)}}}{{{k}}} = {mean}$."]
    return _p(q, steps, mean)


_ALGEBRA: tuple[Callable[[random.Random], _Problem], ...] = (
    _al_linear, _al_linear, _al_bracket, _al_frac_add, _al_eval_poly, _al_arith_seq, _al_gcd, _al_sum_n,
    _al_percent, _al_system, _al_pythagoras, _al_power, _al_mean,
)


# --------------------------------------------------------------------------------------
# Formats (the ones the evaluation prompts use, plus looser web variants)
# --------------------------------------------------------------------------------------


def _fmt_gsm(p: _Problem, r: random.Random) -> str:
    return f"Question: {p.question}\nAnswer: {' '.join(p.steps)} The answer is {p.answer}."


def _fmt_math(p: _Problem, r: random.Random) -> str:
    end = r.choice([f"The answer is $\\boxed{{{p.answer_tex}}}$.", f"Therefore, the answer is $\\boxed{{{p.answer_tex}}}$.",
                    f"So the final answer is $\\boxed{{{p.answer_tex}}}$."])
    return f"Problem:\n{p.question}\nSolution:\n{' '.join(p.steps)} {end}"


def _fmt_mc(p: _Problem, r: random.Random) -> str:
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


def _fmt_web(p: _Problem, r: random.Random) -> str:
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


def _math_problem_block(r: random.Random) -> str:
    if r.random() < 0.55:
        p = r.choice(_WORD_PROBLEMS)(r)
        fmt = r.choices([_fmt_gsm, _fmt_mc, _fmt_math, _fmt_web], weights=[4, 2, 1, 3])[0]
    else:
        p = r.choice(_ALGEBRA)(r)
        fmt = r.choices([_fmt_gsm, _fmt_mc, _fmt_math, _fmt_web], weights=[1, 1, 4, 3])[0]
    if fmt is _fmt_mc and p.numeric is None:
        fmt = _fmt_math
    return fmt(p, r)


def _math_table_block(r: random.Random) -> str:
    """A small table of numbers with its computed total (markdown or plain columns)."""
    (n, _, _) = _person(r)
    items = r.sample(_ITEMS, r.randint(3, 5))
    rows = [(sg, r.randint(1, 9), r.randint(lo, hi)) for sg, _, lo, hi in items]
    costs = [q * p for _, q, p in rows]
    total = sum(costs)
    intro = r.choice([f"{n} made a shopping list. The table shows what {n} bought.",
                      "The table below lists the items in an order.", "Here is the receipt from the school fair:"])
    if r.random() < 0.6:
        lines = ["| Item | Quantity | Price ($) | Cost ($) |", "|---|---|---|---|"]
        lines += [f"| {sg} | {q} | {p} | {q * p} |" for sg, q, p in rows]
        lines.append(f"| **Total** | | | **{total}** |")
    else:
        w = max(len(sg) for sg, _, _ in rows) + 2
        lines = [f"{'Item':<{w}}Qty  Price  Cost"]
        lines += [f"{sg:<{w}}{q:<5}{p:<7}{q * p}" for sg, q, p in rows]
        lines.append(f"{'Total':<{w}}{'':<12}{total}")
    check = " + ".join(map(str, costs))
    tail = r.choice([f"The total cost is {check} = ${total}.", f"Adding the costs: {check} = {total}. The answer is {total}.",
                     f"So {n} spent {check} = ${total} in total."])
    return intro + "\n\n" + "\n".join(lines) + "\n\n" + tail


def _math_definition_block(r: random.Random) -> str:
    """Textbook-style definitions and theorems, each with a freshly computed example."""
    kind = r.randrange(12)
    if kind == 0:
        k = r.randint(2, 60)
        return (f"Definition. An integer $n$ is even if $n = 2k$ for some integer $k$, and odd if $n = 2k + 1$. "
                f"For example, ${2 * k} = 2 \\cdot {k}$ is even and ${2 * k + 1} = 2 \\cdot {k} + 1$ is odd.")
    if kind == 1:
        p = r.choice([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47])
        a, b = r.choice([(2, 3), (2, 5), (3, 5), (2, 7), (3, 4), (4, 5)])
        return (f"A prime number is a positive integer greater than $1$ whose only divisors are $1$ and itself. "
                f"For instance ${p}$ is prime, while ${a * b} = {a} \\times {b}$ is not. "
                "Theorem (Euclid). There are infinitely many prime numbers.")
    if kind == 2:
        a, b, c = r.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (6, 8, 10)])
        return (f"Theorem (Pythagoras). In a right triangle with legs $a$ and $b$ and hypotenuse $c$, $a^2 + b^2 = c^2$. "
                f"For example, ${a}^2 + {b}^2 = {a * a} + {b * b} = {c * c} = {c}^2$.")
    if kind == 3:
        num, den = r.randint(1, 9), r.randint(2, 9)
        g = r.randint(2, 6)
        return (f"Two fractions are equivalent when they name the same number. Multiplying the numerator and the denominator "
                f"by the same nonzero number gives an equivalent fraction: $\\frac{{{num}}}{{{den}}} = \\frac{{{num * g}}}{{{den * g}}}$. "
                "A fraction is in lowest terms when the numerator and denominator have no common factor other than $1$.")
    if kind == 4:
        xs = [r.randint(1, 20) for _ in range(r.randint(3, 5))]
        m = Fraction(sum(xs), len(xs))
        # Integer means are written out; otherwise the reduced fraction and a decimal.
        ms = str(m) if m.denominator == 1 else f"{float(m):.2f}".rstrip("0")
        frac = f"\\frac{{{sum(xs)}}}{{{len(xs)}}}"
        if m.denominator not in (1, len(xs)):
            frac += f" = \\frac{{{m.numerator}}}{{{m.denominator}}}"
        eq = "=" if (m * 100).denominator == 1 else "\\approx"  # two decimals are exact or rounded
        return (f"The mean (average) of a list of numbers is their sum divided by how many numbers there are. "
                f"The mean of {', '.join(map(str, xs))} is ${frac} {eq} {ms}$.")
    if kind == 5:
        m, b = r.randint(-5, 6), r.randint(-9, 9)
        return (f"A linear function has the form $y = mx + b$, where $m$ is the slope and $b$ is the $y$-intercept. "
                f"The line $y = {m}x {_signed(b)}$ has slope ${m}$ and crosses the $y$-axis at $(0, {b})$. "
                f"When $x = 2$, $y = {m} \\cdot 2 {_signed(b)} = {2 * m + b}$.")
    if kind == 6:
        n = r.randint(3, 7)
        prod = " \\cdot ".join(str(i) for i in range(1, n + 1))
        return (f"The factorial of a positive integer $n$, written $n!$, is the product $1 \\cdot 2 \\cdots n$. "
                f"For example, ${n}! = {prod} = {math.factorial(n)}$. "
                "By convention $0! = 1$.")
    if kind == 7:
        a, b, c = r.randint(2, 9), r.randint(2, 9), r.randint(2, 9)
        return (f"The distributive property says $a(b + c) = ab + ac$. For example, ${a}({b} + {c}) = {a} \\cdot {b} + {a} \\cdot {c} "
                f"= {a * b} + {a * c} = {a * (b + c)}$.")
    if kind == 8:
        x = r.choice([i for i in range(-30, 31) if i])
        return (f"The absolute value $|x|$ of a number is its distance from $0$ on the number line, so $|x| \\ge 0$. "
                f"For example, $|{x}| = {abs(x)}$ and $|{-x}| = {abs(x)}$.")
    if kind == 9:
        a, b = r.randint(20, 100), r.randint(20, 100)
        return (f"The angles of a triangle add up to $180^\\circ$. If two angles measure ${a}^\\circ$ and ${min(b, 179 - a)}^\\circ$, "
                f"the third angle is $180 - {a} - {min(b, 179 - a)} = {180 - a - min(b, 179 - a)}$ degrees.")
    if kind == 10:
        a, b, c = r.randint(2, 9), r.randint(2, 9), r.randint(2, 9)
        return (f"Order of operations: evaluate parentheses first, then exponents, then multiplication and division, then addition "
                f"and subtraction. So ${a} + {b} \\times {c} = {a} + {b * c} = {a + b * c}$, but $({a} + {b}) \\times {c} = {(a + b) * c}$.")
    n = r.randint(2, 15)
    return (f"The square root $\\sqrt{{a}}$ of a nonnegative number $a$ is the nonnegative number whose square is $a$. "
            f"Since ${n}^2 = {n * n}$, we have $\\sqrt{{{n * n}}} = {n}$.")


def _math_block(r: random.Random) -> str:
    return r.choices([_math_problem_block, _math_table_block, _math_definition_block], weights=[6, 1, 2])[0](r)


# --------------------------------------------------------------------------------------
# Noise: off-topic prose, navigation, footers, junk
# --------------------------------------------------------------------------------------


def _celebrity(r: random.Random) -> str:
    return f"{r.choice(_NAMES_F + _NAMES_M)} {r.choice(_SURNAMES)}"


def _recipe(r: random.Random) -> str:
    dish = r.choice(_DISHES)
    i1, i2, i3 = r.sample(_INGREDIENTS, 3)
    pool = [
        f"Preheat the oven to {r.choice([325, 350, 375, 400, 180, 200])} degrees.",
        f"In a large bowl, mix {r.randint(1, 4)} cups of {i1} with {r.randint(1, 3)} tablespoons of {i2}.",
        f"Add the {i3} and stir until smooth.", f"Bake for {r.randint(15, 60)} minutes, or until golden brown.",
        f"Let it cool for {r.randint(5, 20)} minutes before serving.", f"Serves {r.randint(2, 8)}.",
        "My grandmother used to make this every Sunday and the whole house smelled amazing.",
        f"You can swap the {i2} for {i3} if you prefer.", "Store leftovers in an airtight container for up to three days.",
    ]
    return f"{r.choice(['Easy', 'Classic', 'Quick', 'The best', 'Healthy'])} {dish} recipe: " + " ".join(r.sample(pool, r.randint(3, 6)))


def _sports(r: random.Random) -> str:
    t1, t2 = r.sample(_TEAMS, 2)
    c1, c2 = r.sample(_CITIES, 2)
    s1, s2 = r.randint(1, 6), r.randint(0, 5)
    player, coach = _celebrity(r), r.choice(_SURNAMES)
    pool = [
        f"The {c1} {t1} beat the {c2} {t2} {max(s1, s2)}-{min(s1, s2)} on {r.choice(_DAYS)} night.",
        f"{player} scored twice in the second half to seal the win.", f"Coach {coach} said the team never stopped believing.",
        f"It was their {r.choice(['third', 'fourth', 'fifth', 'sixth'])} straight victory at home.",
        f"Tickets for the next game against the {t2} go on sale {r.choice(_DAYS)}.",
        f"Fans packed the stadium despite the {r.choice(['rain', 'cold', 'heat', 'wind'])}.",
        f"{player} is expected to miss the next {r.randint(2, 6)} weeks with a knee injury.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 5)))


def _gossip(r: random.Random) -> str:
    a, b = _celebrity(r), _celebrity(r)
    pool = [
        f"{a} was spotted at {r.choice(_VENUES)} with {b} last {r.choice(_DAYS)}.",
        "Fans are wondering if the two are more than just friends.",
        f"A source close to the star said the couple met in {r.choice(_MONTHS)}.",
        f"{a} wore a stunning {r.choice(['red', 'black', 'silver', 'green', 'white'])} dress that had everyone talking.",
        f"Neither {a} nor {b} has commented on the rumors.", "You won't believe what happened next!",
        f"{b} posted a cryptic message on social media hours later.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 5)))


def _advert(r: random.Random) -> str:
    city = r.choice(_CITIES)
    return r.choice([
        f"Looking for cheap flights to {city}? Compare prices from hundreds of airlines and save up to {r.randint(20, 70)}% today.",
        f"Lose weight fast with this one simple trick. Doctors hate it! Over {r.randint(2, 90)},000 people in {city} have tried it.",
        f"Summer sale: everything must go. Free shipping on orders over ${r.randint(25, 99)}. Offer ends {r.choice(_DAYS)}.",
        f"New apartments in {city} from ${r.randint(900, 2500)} a month. Book a viewing now.",
    ])


def _offtopic_prose(r: random.Random) -> str:
    return r.choice([_recipe, _sports, _gossip, _advert])(r)


@dataclass(frozen=True)
class _Site:
    name: str
    nav: str
    footers: tuple[str, ...]


# Fixed sites: each page carries its site's exact menu and footer, so the same boilerplate
# strings recur across many documents as they do in a real crawl.
_SITES: tuple[_Site, ...] = (
    _Site("MathHelpForum", "Home | Forums | Members | Search | Login | Register",
          ("© 2009-2023 MathHelpForum. All rights reserved. | Privacy Policy | Terms of Use | Contact Us",)),
    _Site("AlgebraCorner", "AlgebraCorner.com  ›  Lessons  ›  Practice  ›  Worksheets  ›  About",
          ("Copyright © 2021 AlgebraCorner LLC. Reproduction without permission is prohibited.",
           "AlgebraCorner is a registered trademark. Site map · Accessibility · Advertise with us")),
    _Site("HomeworkQA", "≡ Menu   Ask a Question   Browse Topics   Tutors   Sign in",
          ("HomeworkQA © 2018 – Questions and answers are licensed under CC BY-SA 4.0. Powered by QAEngine 3.2",)),
    _Site("The Number Nook", "Home · Blog · Resources · Shop · Newsletter · Contact",
          ("© The Number Nook 2016. All content is for educational purposes only. Follow us on Twitter and Pinterest.",)),
    _Site("StudyMathOnline", "Skip to main content\nStudyMathOnline | Courses | Grades 1-12 | Pricing | Log in | Start free trial",
          ("StudyMathOnline, Inc. © 2022. Terms | Privacy | Cookie settings | Do Not Sell My Personal Information",
           "Questions? Email support@studymathonline.example or call 1-800-555-0199 (Mon-Fri 9am-5pm)")),
    _Site("mathpuzzles.example", "[Home] [Puzzles] [Archive] [Leaderboard] [FAQ] [Log out]",
          ("Page generated in 0.042 seconds. mathpuzzles.example runs on open-source software. © 2014-2020",)),
    _Site("TutorTalk", "TutorTalk Community > Mathematics > Algebra & Pre-Algebra",
          ("All times are GMT -5. The time now is 10:42 PM. Powered by vBulletin® Copyright ©2000-2019. All rights reserved.",)),
    _Site("K12 Math Hub", "K12 Math Hub  |  Grade 3  |  Grade 4  |  Grade 5  |  Grade 6  |  Teachers  |  Parents",
          ("© 2020 K12 Math Hub. Reproducible for classroom use only. Report a problem with this page.",)),
)
_COOKIE_NOTICES: tuple[str, ...] = (
    "We use cookies to improve your experience on our website. By continuing to browse, you agree to our use of cookies. Accept | Learn more",
    "This site uses cookies to deliver our services and to show you relevant ads. By using our site, you acknowledge that you have read "
    "and understand our Cookie Policy and Privacy Policy.",
    "Cookie notice: we and our partners store and access information on your device. [Accept all] [Reject] [Manage options]",
)


def _nav_snippet(r: random.Random, site: _Site) -> str:
    """Per-page navigation debris: breadcrumbs, post metadata, pagination, share bars."""
    kind = r.randrange(7)
    user = f"{r.choice(_NAMES_F + _NAMES_M).lower()}{r.choice(['', '_', '.'])}{r.randint(1, 999)}"
    if kind == 0:
        return f"Home » {_cap(r.choice(_TOPICS))} » {r.choice(['Solved', 'Help', 'Lesson', 'Thread'])} #{r.randint(100, 99999)}"
    if kind == 1:
        return f"Posted by {user} on {r.choice(_MONTHS)} {r.randint(1, 28)}, {r.randint(2008, 2023)} at {r.randint(1, 12)}:{r.randint(0, 59):02d} {r.choice(['AM', 'PM'])}"
    if kind == 2:
        return f"Reply | Quote | Report | Share\nViews: {r.randint(12, 99999):,} | Replies: {r.randint(0, 40)}"
    if kind == 3:
        return f"« Previous thread | Next thread »\nPage {r.randint(1, 3)} of {r.randint(3, 9)}   1 2 3 … Next ›"
    if kind == 4:
        return "Tags: " + ", ".join(r.sample(_TOPICS, r.randint(2, 4)))
    if kind == 5:
        return f"Share this: Facebook Twitter Email Print\nLike this: Like Loading... Related: {_cap(r.choice(_TOPICS))} practice set {r.randint(1, 20)}"
    return f"Back to top ↑   |   {site.name} Mobile   |   Jump to: {_cap(r.choice(_TOPICS))}"


def _hex(r: random.Random, n: int) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def _junk(r: random.Random) -> str:
    kind = r.randrange(8)
    b64 = string.ascii_letters + string.digits + "+/"
    if kind == 0:
        return _hex(r, r.choice([32, 40, 64]))
    if kind == 1:
        return "".join(r.choice(b64) for _ in range(r.randint(40, 120))) + r.choice(["", "=", "=="])
    if kind == 2:
        return (f"?utm_source={r.choice(['newsletter', 'google', 'facebook', 'twitter'])}&utm_medium={r.choice(['email', 'cpc', 'social'])}"
                f"&utm_campaign={r.choice(['spring', 'fall', 'promo', 'bts'])}_{r.randint(2015, 2023)}&gclid={''.join(r.choice(b64[:62]) for _ in range(24))}")
    if kind == 3:
        return f"UA-{r.randint(1000000, 99999999)}-{r.randint(1, 9)} _ga=GA1.2.{r.randint(10**8, 10**9)}.{r.randint(10**9, 2 * 10**9)} sid={_hex(r, 16)}"
    if kind == 4:
        return "".join(r.choice("😀😂🔥💯👍🎉✨❤️🙏😍🤔👀💥⭐🚀") for _ in range(r.randint(4, 16)))
    if kind == 5:
        return (f"<div class=\"ad-slot-{r.randint(1, 9)}\" data-id=\"{_hex(r, 8)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 12)}\"></div>"
                + "&nbsp;" * r.randint(1, 4))
    if kind == 6:
        return f"var _0x{_hex(r, 4)}=['\\x{_hex(r, 2)}\\x{_hex(r, 2)}','{_hex(r, 6)}'];(function(a,b){{a.push(a.shift())}}(_0x{_hex(r, 4)},0x{_hex(r, 3)}));"
    return f"data:image/png;base64,iVBORw0KGgo{''.join(r.choice(b64) for _ in range(r.randint(30, 90)))}"


def _noise_block(r: random.Random, site: _Site) -> tuple[int, str]:
    label = r.choices([PROSE, JUNK, NAVIGATION], weights=[4, 4, 3])[0]
    if label == PROSE:
        return PROSE, _offtopic_prose(r)
    if label == JUNK:
        return JUNK, _junk(r)
    return NAVIGATION, _nav_snippet(r, site)


# --------------------------------------------------------------------------------------
# Public generators
# --------------------------------------------------------------------------------------


def _rng(corpus: str, seed: int, i: int) -> random.Random:
    return random.Random(f"rhocluster/{corpus}/{seed}/{i}")


def _join_segments(segments: list[tuple[int, str]], r: random.Random) -> tuple[str, list[list[int]]]:
    """Concatenate labelled segments and return the text with its covering spans.

    The whitespace that separates two segments is given to the FOLLOWING segment, so every
    span except the first starts with whitespace and ends on a visible character.  Byte-level
    BPE tokens carry their leading space (" word"), hence a token's first character and its
    first non-space character then fall into the same span, whichever rule is applied.
    """
    parts: list[str] = []
    spans: list[list[int]] = []
    pos = 0
    for k, (label, body) in enumerate(segments):
        if k:
            # Junk and emoji are often glued onto the previous line; otherwise blank lines.
            if label == JUNK and r.random() < 0.3:
                sep = " "
            elif label == MATH and segments[k - 1][0] == MATH:
                sep = "\n\n"  # keep separate problems apart, as the evaluation prompts do
            else:
                sep = r.choice(["\n\n", "\n\n", "\n"])
            body = sep + body
        if spans and spans[-1][2] == label:
            spans[-1][1] = pos + len(body)  # merge neighbours with the same label
        else:
            spans.append([pos, pos + len(body), label])
        parts.append(body)
        pos += len(body)
    return "".join(parts), spans


def _math_web_doc(r: random.Random) -> tuple[str, list[list[int]]]:
    site = r.choice(_SITES)
    # Target share of noise characters for this page; header and footer come on top, so
    # the realised share is somewhat higher and varies widely from page to page.
    target = r.uniform(0.05, 0.45)
    header: list[tuple[int, str]] = [(NAVIGATION, site.nav)]
    if r.random() < 0.5:
        header.append((NAVIGATION, _nav_snippet(r, site)))
    body = [(MATH, _math_block(r)) for _ in range(r.randint(3, 7))]
    footer = [(FOOTER, f) for f in site.footers]
    if r.random() < 0.5:
        cookie = (FOOTER, r.choice(_COOKIE_NOTICES))
        if r.random() < 0.5:
            header.insert(0, cookie)  # cookie banners often sit at the top of the page
        else:
            footer.insert(0, cookie)
    math_chars = sum(len(t) for _, t in body)
    noise_chars = sum(len(t) for _, t in header + footer)
    budget = target / (1.0 - target) * math_chars
    while noise_chars < budget:
        block = _noise_block(r, site)
        # Insert between body blocks (never before the first, so pages open with their menu).
        body.insert(r.randint(1, len(body)), block)
        noise_chars += len(block[1])
    return _join_segments(header + body + footer, r)


def generate_math_web(n_docs: int, seed: int) -> list[dict]:
    """Scraped-looking math web pages with a ground-truth label for every character.

    Returns ``[{"id", "text", "spans"}]``; ``spans`` is a list of ``[start, end, label_id]``
    (ids index :data:`rhocluster.corpus.labels.LABELS`) that tile ``text`` exactly: the first
    starts at 0, each starts where the previous one ends, the last ends at ``len(text)``, and
    neighbouring spans have different labels.  Inter-segment whitespace belongs to the span
    that follows it.  Overall roughly a third of the characters are noise.
    """
    docs = []
    for i in range(n_docs):
        text, spans = _math_web_doc(_rng("mathweb", seed, i))
        docs.append({"id": f"mathweb-{seed}-{i:06d}", "text": text, "spans": spans})
    return docs


def generate_hq_math(n_docs: int, seed: int) -> list[dict]:
    """Clean problem/solution text in exactly the evaluation formats (reference-model data).

    Each document holds 2-6 examples separated by a blank line, each one of
    ``"Question: ...\\nAnswer: ... The answer is N."``, ``"Problem:\\n...\\nSolution:\\n...
    \\boxed{N}..."`` or the multiple-choice ``"Answer Choices: (A) ... The answer is (B)."``.
    """
    docs = []
    for i in range(n_docs):
        r = _rng("hq", seed, i)
        examples = []
        for _ in range(r.randint(2, 6)):
            kind = r.choices(["gsm", "math", "mc"], weights=[5, 3, 2])[0]
            if kind == "gsm":
                p = r.choice(_WORD_PROBLEMS + _ALGEBRA[:2])(r)
                examples.append(_fmt_gsm(p, r))
            elif kind == "math":
                p = r.choice(_ALGEBRA + _WORD_PROBLEMS[:4])(r)
                examples.append(_fmt_math(p, r))
            else:
                p = r.choice(_WORD_PROBLEMS + _ALGEBRA)(r)
                examples.append(_fmt_mc(p, r) if p.numeric is not None else _fmt_math(p, r))
        docs.append({"id": f"hq-{seed}-{i:06d}", "text": "\n\n".join(examples)})
    return docs


_ANIMALS = ("fox", "owl", "rabbit", "dolphin", "beaver", "hedgehog", "eagle", "otter", "deer", "squirrel", "whale", "badger")
_HABITATS = ("forests", "rivers", "mountains", "grasslands", "the ocean", "wetlands", "deserts", "coastal cliffs")
_FOODS = ("insects", "berries", "fish", "seeds", "leaves", "small mammals", "roots", "nuts")
_STORY_PLACES = ("the market", "the library", "the park", "the harbor", "her aunt's farm", "the old mill", "the train station",
                 "the museum", "the bakery", "the beach")
_STORY_THINGS = ("a red umbrella", "an old map", "a lost puppy", "a silver key", "a letter", "a kite", "a small wooden box",
                 "a broken bicycle", "a jar of honey", "a paper boat")


def _story(r: random.Random) -> str:
    (n, s, pos), (n2, _, _) = _two_people(r)
    place, thing = r.choice(_STORY_PLACES), r.choice(_STORY_THINGS)
    pool = [
        f"One {r.choice(['morning', 'afternoon', 'evening'])} in {r.choice(_MONTHS)}, {n} walked to {place}.",
        f"On the way, {s} found {thing} lying near the road.", f"{_cap(s)} showed it to {pos} friend {n2}.",
        f"\"Where do you think it came from?\" asked {n2}.", f"They decided to ask the people at {place}.",
        f"Nobody knew, so {n} kept it safe at home.", f"The weather was {r.choice(['cold', 'warm', 'rainy', 'windy', 'bright'])}, and the streets of {r.choice(_CITIES)} were quiet.",
        f"Later that week {n2} came back with an idea.", f"In the end, {n} learned that small things can matter a lot.",
        f"{_cap(s)} smiled and went home for dinner.",
    ]
    k = r.randint(4, len(pool))
    idx = sorted(r.sample(range(len(pool)), k))  # keep the story's order
    return " ".join(pool[j] for j in idx)


def _fact(r: random.Random) -> str:
    a = r.choice(_ANIMALS)
    pool = [
        f"The {a} lives in {r.choice(_HABITATS)} and eats mostly {r.choice(_FOODS)}.",
        f"An adult {a} can weigh up to {r.randint(2, 90)} kilograms.", f"Young {a}s stay with their parents for several months.",
        f"Scientists have studied the {a} for many years.", f"Most {a}s are active at {r.choice(['night', 'dawn', 'dusk', 'midday'])}.",
        f"In winter, the {a} {r.choice(['grows a thicker coat', 'travels long distances', 'rests more', 'stores food'])}.",
        f"People in {r.choice(_CITIES)} sometimes see a {a} near the edge of town.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 6)))


def _letter(r: random.Random) -> str:
    (n, _, _), (n2, _, _) = _two_people(r)
    return (f"Dear {n2},\n\nThank you for your letter. I am writing from {r.choice(_CITIES)}, where it has been "
            f"{r.choice(['sunny', 'rainy', 'snowing', 'very windy'])} all week. "
            f"{r.choice(['School starts again on ' + r.choice(_DAYS) + '.', 'We visited ' + r.choice(_STORY_PLACES) + ' yesterday.', 'My garden is finally growing.'])} "
            f"I hope to see you in {r.choice(_MONTHS)}.\n\nBest wishes,\n{n}")


def _simple_math(r: random.Random) -> str:
    kind = r.randrange(4)
    if kind == 0:
        a, b = r.randint(1, 20), r.randint(1, 20)
        return f"{a} plus {b} equals {a + b}. {a + b} minus {b} equals {a}. We can write this as {a} + {b} = {a + b} and {a + b} - {b} = {a}."
    if kind == 1:
        k = r.randint(2, 9)
        return f"The {k} times table: " + ", ".join(f"{k} x {i} = {k * i}" for i in range(1, r.randint(6, 11)))
    if kind == 2:
        (n, s, _), obj = _person(r), r.choice(_COUNTABLES)
        a, b = r.randint(3, 20), r.randint(1, 9)
        return f"{n} had {a} {obj}. Then {s} got {b} more. Now {n} has {a} + {b} = {a + b} {obj}."
    start, step = r.randint(1, 10), r.randint(1, 5)
    return "Counting by " + str(step) + "s: " + ", ".join(str(start + step * i) for i in range(r.randint(5, 10))) + "."


def generate_pretrain(n_docs: int, seed: int) -> list[dict]:
    """Generic pretraining mix for the tiny base model: ~85% everyday prose (stories,
    animal facts, letters, news-like and recipe text), ~15% very simple arithmetic text.
    Deliberately none of the evaluation formats, so the base model starts weak at them."""
    docs = []
    for i in range(n_docs):
        r = _rng("pretrain", seed, i)
        parts = []
        for _ in range(r.randint(2, 5)):
            gen = r.choices([_story, _fact, _letter, _offtopic_prose, _simple_math], weights=[4, 3, 1, 3, 2])[0]
            parts.append(gen(r))
        docs.append({"id": f"pretrain-{seed}-{i:06d}", "text": "\n\n".join(parts)})
    return docs


# --------------------------------------------------------------------------------------
# Span labels -> token labels
# --------------------------------------------------------------------------------------


def label_token_spans(
    offsets: Sequence[tuple[int, int]], spans: list[list[int]], text: str | None = None
) -> np.ndarray:
    """Label each token with the label of the span holding its first non-space character.

    ``offsets`` are the tokenizer's character offsets ``(start, end)``; ``spans`` the
    ``[start, end, label]`` tiling of the text.  Rule for a token that crosses a span
    border: it belongs entirely to the span of its first non-space character (tokens are
    predicted as a whole, and the leading space of " word" is not what the word is about).
    Whitespace-only tokens take the span of their first character.  Tokens with empty
    offsets (BOS/EOS/PAD) get :data:`~rhocluster.corpus.labels.NO_LABEL` (255).

    ``text`` is needed to see spaces; without it the token's first character is used,
    which is the same thing for :func:`generate_math_web` output because separating
    whitespace always starts the following span.
    """
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    out = np.full(len(offs), NO_LABEL, dtype=np.uint8)
    if len(offs) == 0 or not spans:
        return out
    sp = np.asarray(spans, dtype=np.int64).reshape(-1, 3)
    starts = offs[:, 0].copy()
    real = offs[:, 1] > offs[:, 0]
    if text is not None and len(text):
        # next_visible[i] = first index >= i holding a non-space character (len(text) if none)
        space = np.fromiter((c.isspace() for c in text), dtype=bool, count=len(text))
        pos = np.where(space, len(text), np.arange(len(text)))
        next_visible = np.minimum.accumulate(pos[::-1])[::-1]
        first = next_visible[np.clip(starts, 0, len(text) - 1)]
        use = real & (first < offs[:, 1])  # whitespace-only tokens keep their own start
        starts[use] = first[use]
    idx = np.searchsorted(sp[:, 0], starts, side="right") - 1
    inside = real & (idx >= 0) & (starts < sp[np.clip(idx, 0, None), 1])
    out[inside] = sp[idx[inside], 2].astype(np.uint8)
    return out
